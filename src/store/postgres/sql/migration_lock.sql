-- Processes migrating the same schema at once take turns: the lock is held until the
-- migration's transaction ends. Keyed by the schema, so tests (a schema each) do not wait for
-- each other. (sqlx's migrator locks by database name, with a key of its own.)
SELECT pg_advisory_xact_lock(hashtextextended(coalesce(current_schema(), '') || '.porter_migrations', 0));
