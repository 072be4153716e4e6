-- Postgres only: wakes the producers of these queues in every process (LISTEN porter_insert).
-- Sent inside the writing transaction, so it is delivered at commit and never for a rollback.
-- SQLite has no NOTIFY; other processes see its commits through PRAGMA data_version.
SELECT pg_notify('porter_insert', q) FROM unnest($1::text[]) AS q
