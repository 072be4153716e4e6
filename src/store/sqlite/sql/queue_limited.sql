-- Every queue with a limit, from porter_queues alone, as on PostgreSQL. Names read as text
-- (another program may have bound one as a BLOB), as queue_list.sql reads them.
SELECT CAST(name AS TEXT) AS name, paused_at, concurrency, per_key_concurrency, rate_limit,
       rate_period_ms, rate_per_key_limit, rate_per_key_period_ms
FROM porter_queues
WHERE concurrency IS NOT NULL OR per_key_concurrency IS NOT NULL OR rate_limit IS NOT NULL
   OR rate_per_key_limit IS NOT NULL
ORDER BY CAST(name AS TEXT)
