-- In the current schema only (the one porter creates its tables in): a porter elsewhere on the
-- search path (a shared schema behind a tenant's) is not this schema's.
SELECT coalesce(to_regclass(quote_ident(current_schema()) || '.porter_migrations') IS NOT NULL, false);
