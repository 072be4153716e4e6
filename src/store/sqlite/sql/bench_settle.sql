-- porter bench --workflow, between its cases: the WAL the case before wrote (its jobs, and
-- their deletion) copied into the database and emptied, so that each case starts with a WAL
-- as empty as the first case's.
PRAGMA wal_checkpoint(TRUNCATE)
