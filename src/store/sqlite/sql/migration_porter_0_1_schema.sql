-- What porter 0.1 (which kept its version in PRAGMA user_version) applied, as the schema shows
-- it: its first migration made porter_jobs, the second is empty on SQLite, the third added
-- porter_workers.lease_ms.
SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'porter_jobs'),
       EXISTS (SELECT 1 FROM pragma_table_info('porter_workers') WHERE name = 'lease_ms');
