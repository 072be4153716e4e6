SELECT name, paused_at, concurrency, per_key_concurrency, rate_limit, rate_period_ms,
       rate_per_key_limit, rate_per_key_period_ms
FROM porter_queues WHERE name = ?1
