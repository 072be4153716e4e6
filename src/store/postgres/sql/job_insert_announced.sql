-- Postgres only: the tail of one statement that starts with job_insert.sql as its CTE
-- `inserted` (the driver joins the two) and sends queue_notify.sql's NOTIFY in the same
-- statement, for inserts sent outside a transaction (the statement commits by itself, and
-- the NOTIFY is delivered at that commit, never for a rollback). $18 is the array of queues.
-- The CTE `woken` is joined so that it runs (a WITH query nobody reads is never evaluated);
-- its one row leaves the inserted rows as they are. SQLite has no NOTIFY (see queue_notify.sql).
woken AS (SELECT count(pg_notify('porter_insert', q)) AS queues FROM unnest($18::text[]) AS q)
SELECT inserted.* FROM inserted, woken
