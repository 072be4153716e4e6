-- In the current schema only, as migration_exists.
SELECT coalesce(to_regclass(quote_ident(current_schema()) || '._sqlx_migrations') IS NOT NULL, false);
