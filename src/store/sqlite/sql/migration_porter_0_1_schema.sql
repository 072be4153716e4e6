-- What porter 0.1 (which kept its version in PRAGMA user_version) applied, as the schema shows
-- it: how many of the four tables its first migration made are there (the second is empty on
-- SQLite), whether its third added porter_workers.lease_ms.
SELECT (SELECT count(*) FROM sqlite_master
        WHERE type = 'table'
          AND name IN ('porter_jobs', 'porter_queues', 'porter_workers', 'porter_periodic')),
       EXISTS (SELECT 1 FROM pragma_table_info('porter_workers') WHERE name = 'lease_ms');
