-- Flow control (issue 15): a job's concurrency key, each queue's limits, and the record of
-- recent starts that rate limits count. Same tables and meaning as the SQLite flavour.
-- NULL everywhere means "no limit", so a database upgraded with jobs in every state keeps
-- behaving as before.
ALTER TABLE porter_jobs ADD COLUMN concurrency_key TEXT;

ALTER TABLE porter_queues
    ADD COLUMN concurrency INTEGER CHECK (concurrency IS NULL OR concurrency >= 1),
    ADD COLUMN per_key_concurrency INTEGER CHECK (per_key_concurrency IS NULL OR per_key_concurrency >= 1),
    ADD COLUMN rate_limit INTEGER CHECK (rate_limit IS NULL OR rate_limit >= 1),
    ADD COLUMN rate_period_ms BIGINT CHECK (rate_period_ms IS NULL OR rate_period_ms >= 1),
    ADD COLUMN rate_per_key_limit INTEGER CHECK (rate_per_key_limit IS NULL OR rate_per_key_limit >= 1),
    ADD COLUMN rate_per_key_period_ms BIGINT CHECK (rate_per_key_period_ms IS NULL OR rate_per_key_period_ms >= 1);

-- A limited claim counts the running jobs of its queue, per key.
CREATE INDEX porter_jobs_running_key ON porter_jobs (queue, concurrency_key) WHERE state = 'running';

-- One row per start of a job of a rate-limited queue, at its claim time (the database's
-- clock). A retried job's earlier starts still count. Rows older than the queue's longest
-- window are deleted by its claims. IF NOT EXISTS: a schema reset that dropped porter's other
-- tables (by their names before this migration) may leave this one behind.
CREATE TABLE IF NOT EXISTS porter_queue_starts (
    id              BIGSERIAL PRIMARY KEY, -- a key of its own (porter copy copies by primary key)
    queue           TEXT NOT NULL,
    concurrency_key TEXT,
    started_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS porter_queue_starts_window ON porter_queue_starts (queue, started_at);
CREATE INDEX IF NOT EXISTS porter_queue_starts_key ON porter_queue_starts (queue, concurrency_key, started_at);
