-- Counted (changes, migration 0051; see queue_pause.sql). Sets a queue's limits: $2 clears every limit first; otherwise a NULL keeps the value.
INSERT INTO porter_queues AS q (name, concurrency, per_key_concurrency, rate_limit, rate_period_ms,
                                rate_per_key_limit, rate_per_key_period_ms, changes)
-- A clear that sets nothing writes no record for a queue that has none (a typo would be listed
-- for good, as resume's used to be): only one that sets a limit, or finds a record, writes (no
-- row comes back then).
SELECT $1, $3::int, $4::int, $5::int, $6::bigint, $7::int, $8::bigint, 1
WHERE NOT ($2 AND $3::int IS NULL AND $4::int IS NULL AND $5::int IS NULL AND $7::int IS NULL)
   OR EXISTS (SELECT 1 FROM porter_queues WHERE name = $1)
ON CONFLICT (name) DO UPDATE SET
    changes                = q.changes + 1,
    concurrency            = CASE WHEN $2 THEN EXCLUDED.concurrency ELSE COALESCE(EXCLUDED.concurrency, q.concurrency) END,
    per_key_concurrency    = CASE WHEN $2 THEN EXCLUDED.per_key_concurrency
                                  ELSE COALESCE(EXCLUDED.per_key_concurrency, q.per_key_concurrency) END,
    rate_limit             = CASE WHEN $2 OR EXCLUDED.rate_limit IS NOT NULL THEN EXCLUDED.rate_limit ELSE q.rate_limit END,
    rate_period_ms         = CASE WHEN $2 OR EXCLUDED.rate_limit IS NOT NULL THEN EXCLUDED.rate_period_ms ELSE q.rate_period_ms END,
    rate_per_key_limit     = CASE WHEN $2 OR EXCLUDED.rate_per_key_limit IS NOT NULL THEN EXCLUDED.rate_per_key_limit
                                  ELSE q.rate_per_key_limit END,
    rate_per_key_period_ms = CASE WHEN $2 OR EXCLUDED.rate_per_key_limit IS NOT NULL THEN EXCLUDED.rate_per_key_period_ms
                                  ELSE q.rate_per_key_period_ms END
RETURNING name, paused_at, concurrency, per_key_concurrency, rate_limit, rate_period_ms,
          rate_per_key_limit, rate_per_key_period_ms
