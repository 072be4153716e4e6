-- The limits of a queue that is not paused and has some, read after job_claim.sql took
-- nothing, inside the limited claim's transaction. Differs from SQLite (one writer, nothing to
-- lock): FOR UPDATE makes the limited claims of every process take turns on the queue's row,
-- so that two of them cannot both count the same free slot (or the same start left in a rate
-- window). Only claims of limited queues take this lock; it is held until COMMIT.
SELECT concurrency, per_key_concurrency, rate_limit, rate_period_ms, rate_per_key_limit, rate_per_key_period_ms
FROM porter_queues
WHERE name = $1 AND paused_at IS NULL
  AND (concurrency IS NOT NULL OR per_key_concurrency IS NOT NULL OR rate_limit IS NOT NULL
       OR rate_per_key_limit IS NOT NULL)
FOR UPDATE
