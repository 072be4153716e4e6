-- porter copy: whether this file holds porter's tables, read before anything migrates it: a
-- source that does not is refused, not migrated. porter_jobs counts too: porter 0.1 recorded
-- no porter_migrations (its files are adopted and migrated like any older one).
SELECT count(*) FROM sqlite_master
WHERE type = 'table' AND name IN ('porter_migrations', 'porter_jobs')
