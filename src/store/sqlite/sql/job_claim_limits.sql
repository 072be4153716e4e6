-- The limits of a queue that is not paused and has some, read after job_claim.sql took
-- nothing. No lock, unlike PostgreSQL: this runs inside the one write transaction.
SELECT concurrency, per_key_concurrency, rate_limit, rate_period_ms, rate_per_key_limit, rate_per_key_period_ms
FROM porter_queues
WHERE name = ?1 AND paused_at IS NULL
  AND (concurrency IS NOT NULL OR per_key_concurrency IS NOT NULL OR rate_limit IS NOT NULL
       OR rate_per_key_limit IS NOT NULL)
