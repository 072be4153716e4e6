-- The column SQLite counts each worker's cancel requests in (see
-- migrations-sqlite/0053_cancel_requests_counted.sql), so that both backends keep the same
-- tables for `porter copy`. PostgreSQL leaves it at 0: a request sends NOTIFY porter_cancel
-- to the job's worker in the cancelling transaction.
ALTER TABLE porter_workers ADD COLUMN cancels BIGINT NOT NULL DEFAULT 0;
