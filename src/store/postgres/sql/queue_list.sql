SELECT name, paused_at, concurrency, per_key_concurrency, rate_limit, rate_period_ms,
       rate_per_key_limit, rate_per_key_period_ms
FROM porter_queues
UNION
SELECT DISTINCT queue, NULL::timestamptz, NULL::int, NULL::int, NULL::int, NULL::bigint, NULL::int, NULL::bigint
FROM porter_jobs WHERE queue NOT IN (SELECT name FROM porter_queues)
ORDER BY name
