-- porter 0.1's own rows in _sqlx_migrations (version, and the description sqlx took from its
-- file names), deleted once their versions are in porter_migrations: left there, they make
-- the application's sqlx migrator fail ("migration 1 was previously applied but is
-- missing"). Every other row is the application's and stays.
DELETE FROM _sqlx_migrations
WHERE (version, description) IN ((1, 'init'), (2, 'porter now'), (3, 'worker lease'), (4, 'tablo file uploads'));
