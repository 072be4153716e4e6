-- Postgres only: tells the worker running a job ($1, its worker id) that a user asked to
-- cancel it (LISTEN porter_cancel). Sent inside the cancelling transaction: delivered at commit.
-- SQLite has no NOTIFY; its workers see the commit through PRAGMA data_version.
SELECT pg_notify('porter_cancel', $1)
