-- Whether porter_migrations has its checksum column (added 7 Dec; a table created before
-- lacks it, and gets it under the write lock).
SELECT count(*) > 0 FROM pragma_table_info('porter_migrations') WHERE name = 'checksum'
