-- Every queue with a limit, from porter_queues alone (a metrics scrape's look at the limits:
-- queue_list.sql also lists the queues only jobs name, reading every job for them).
SELECT name, paused_at, concurrency, per_key_concurrency, rate_limit, rate_period_ms,
       rate_per_key_limit, rate_per_key_period_ms
FROM porter_queues
WHERE concurrency IS NOT NULL OR per_key_concurrency IS NOT NULL OR rate_limit IS NOT NULL
   OR rate_per_key_limit IS NOT NULL
ORDER BY name
