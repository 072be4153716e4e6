-- Differs from SQLite, which needs no row locks inside its one write transaction: here
-- producers of many processes claim at once, and FOR UPDATE SKIP LOCKED lets each take rows
-- nobody else is taking instead of queueing behind them. $3 is the array of kinds.
WITH picked AS (
    SELECT id FROM porter_jobs
    WHERE state = 'available' AND queue = $1 AND scheduled_at <= porter_now()
      -- The walk starts after the queue's claim cursor ($5-$7, see cursor.rs; priority 0 for
      -- a full claim), not at the queue's start: the entries of jobs claimed before it stay in
      -- the index while any snapshot may still see them.
      AND (priority, scheduled_at, id) > ($5::smallint, $6::timestamptz, $7::bigint)
      AND kind = ANY($3::text[])
      -- A job a plain INSERT gave a billion attempts (or allowed attempts) or more is never
      -- claimed: near the top of `integer`, the claim's `attempt + 1` would fail the claim of
      -- the whole queue, and a release's `max_attempts + 1` the give-back (0037).
      AND attempt < 1000000000 AND max_attempts < 1000000000
      -- A queue with limits is claimed by job_claim_limited.sql instead (this one then takes
      -- nothing, and the driver looks at the limits): one condition on a row read anyway.
      AND NOT EXISTS (SELECT 1 FROM porter_queues WHERE name = $1
                      AND (paused_at IS NOT NULL OR concurrency IS NOT NULL OR per_key_concurrency IS NOT NULL
                           OR rate_limit IS NOT NULL OR rate_per_key_limit IS NOT NULL))
      -- A worker whose recorded heartbeat is older than half its lease takes nothing: a claim
      -- it sent before it stalled (stopped, or cut off from the database) and that runs only
      -- now would take jobs for a worker other rescuers are about to judge lost. A worker not
      -- registered, or registered without a lease, is not held back. Evaluated once.
      AND NOT EXISTS (SELECT 1 FROM porter_workers w WHERE w.id = $2 AND w.lease_ms IS NOT NULL
                      AND w.heartbeat_at < coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, statement_timestamp())
                                           - least(greatest(w.lease_ms, -40000000000000), 40000000000000) / 2.0 * interval '1 millisecond')
    ORDER BY priority, scheduled_at, id
    LIMIT $4
    FOR UPDATE SKIP LOCKED
)
-- The rows are then found by primary key from an array: joining `picked` instead lets the
-- planner hash-join against a sequential scan of the whole table when it is small.
-- attempted_at is the clock's time at the row's update, not porter_now() (the start of the
-- statement's transaction, fixed before it planned, took its locks and took its snapshot): a
-- job made available by a commit this claim saw is recorded as started after that commit, so
-- never before the end of a parent it waited for.
UPDATE porter_jobs j
SET state = 'running', attempt = j.attempt + 1,
    attempted_at = coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, clock_timestamp()),
    attempted_by = $2
WHERE j.id = ANY(ARRAY(SELECT id FROM picked))
RETURNING j.*
