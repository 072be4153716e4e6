-- Counted (changes, migration 0051; see queue_pause.sql). Sets a queue's limits: ?2 = 1 clears every limit first; otherwise a NULL keeps the value.
INSERT INTO porter_queues (name, concurrency, per_key_concurrency, rate_limit, rate_period_ms,
                           rate_per_key_limit, rate_per_key_period_ms, changes)
-- A clear that sets nothing writes no record for a queue that has none (a typo would be listed
-- for good, as resume's used to be): only one that sets a limit, or finds a record, writes.
SELECT ?1, ?3, ?4, ?5, ?6, ?7, ?8, 1
WHERE NOT (?2 AND ?3 IS NULL AND ?4 IS NULL AND ?5 IS NULL AND ?7 IS NULL)
   OR EXISTS (SELECT 1 FROM porter_queues WHERE name = ?1)
ON CONFLICT (name) DO UPDATE SET
    changes                = porter_queues.changes + 1,
    concurrency            = CASE WHEN ?2 THEN excluded.concurrency ELSE coalesce(excluded.concurrency, concurrency) END,
    per_key_concurrency    = CASE WHEN ?2 THEN excluded.per_key_concurrency
                                  ELSE coalesce(excluded.per_key_concurrency, per_key_concurrency) END,
    rate_limit             = CASE WHEN ?2 OR excluded.rate_limit IS NOT NULL THEN excluded.rate_limit ELSE rate_limit END,
    rate_period_ms         = CASE WHEN ?2 OR excluded.rate_limit IS NOT NULL THEN excluded.rate_period_ms ELSE rate_period_ms END,
    rate_per_key_limit     = CASE WHEN ?2 OR excluded.rate_per_key_limit IS NOT NULL THEN excluded.rate_per_key_limit
                                  ELSE rate_per_key_limit END,
    rate_per_key_period_ms = CASE WHEN ?2 OR excluded.rate_per_key_limit IS NOT NULL THEN excluded.rate_per_key_period_ms
                                  ELSE rate_per_key_period_ms END
