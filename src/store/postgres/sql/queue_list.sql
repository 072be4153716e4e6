-- Up to $2 queues in name order from the first name after $1 (every name when NULL): queues
-- with settings, and queues that only jobs name. A page at a time, so that no listing holds
-- every queue's row at once (any caller of the admin API can name a new queue with each job).
SELECT name COLLATE "C" AS name, paused_at, concurrency, per_key_concurrency, rate_limit, rate_period_ms,
       rate_per_key_limit, rate_per_key_period_ms
FROM porter_queues WHERE $1::text IS NULL OR name COLLATE "C" > $1::text
UNION
SELECT DISTINCT queue COLLATE "C", NULL::timestamptz, NULL::int, NULL::int, NULL::int, NULL::bigint, NULL::int, NULL::bigint
FROM porter_jobs WHERE ($1::text IS NULL OR queue COLLATE "C" > $1::text) AND queue NOT IN (SELECT name FROM porter_queues)
-- By the names' bytes (`COLLATE "C"`, the output column's), as SQLite orders text and porter
-- sorts in Rust, whatever the database's collation: under an en-US one the order and the pages
-- differed from SQLite's.
ORDER BY name
LIMIT $2
