-- Up to $2 queues in name order from the first name after $1 (every name when NULL): queues
-- with settings, and queues that only jobs name. A page at a time, so that no listing holds
-- every queue's row at once (any caller of the admin API can name a new queue with each job).
SELECT name, paused_at, concurrency, per_key_concurrency, rate_limit, rate_period_ms,
       rate_per_key_limit, rate_per_key_period_ms
FROM porter_queues WHERE $1::text IS NULL OR name > $1::text
UNION
SELECT DISTINCT queue, NULL::timestamptz, NULL::int, NULL::int, NULL::int, NULL::bigint, NULL::int, NULL::bigint
FROM porter_jobs WHERE ($1::text IS NULL OR queue > $1::text) AND queue NOT IN (SELECT name FROM porter_queues)
ORDER BY name
LIMIT $2
