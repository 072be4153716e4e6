-- porter copy: whether the schema the connection uses holds porter's tables, read before
-- anything migrates it: a source that does not is refused, not migrated. porter_jobs counts
-- too: porter 0.1 recorded no porter_migrations (its databases are adopted and migrated like
-- any older one).
SELECT count(*) FROM information_schema.tables
WHERE table_schema = current_schema() AND table_name IN ('porter_migrations', 'porter_jobs')
