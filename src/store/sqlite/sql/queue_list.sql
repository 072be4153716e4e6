-- Up to ?2 queues in name order from the first name after ?1 (every name when NULL): queues
-- with settings, and queues that only jobs name, a page at a time as on PostgreSQL. The latter
-- are read from the index of each group of states (as job_counts.sql does), not by a scan of
-- porter_jobs: since 0041 no index holds every job. Differs from PostgreSQL, which scans the
-- table for them (a sequential scan there cost about what a walk of the old porter_jobs_fetch
-- did). Names are compared and sorted as text: another program may have bound one as a BLOB,
-- which SQLite sorts after every text, so that the cursor (read as text) never got past it
-- and the pages repeated it for good (review of 5 Dec).
SELECT CAST(name AS TEXT) AS name, paused_at, concurrency, per_key_concurrency, rate_limit,
       rate_period_ms, rate_per_key_limit, rate_per_key_period_ms
FROM porter_queues WHERE ?1 IS NULL OR CAST(name AS TEXT) > ?1
UNION
SELECT DISTINCT CAST(queue AS TEXT), NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM (SELECT queue FROM porter_jobs WHERE state = 'available'
      UNION SELECT queue FROM porter_jobs WHERE state = 'running'
      UNION SELECT queue FROM porter_jobs WHERE state = 'pending'
      UNION SELECT queue FROM porter_jobs WHERE state IN ('scheduled','retryable')
      UNION SELECT queue FROM porter_jobs WHERE state IN ('completed','cancelled','discarded'))
WHERE (?1 IS NULL OR CAST(queue AS TEXT) > ?1)
  AND CAST(queue AS TEXT) NOT IN (SELECT CAST(name AS TEXT) FROM porter_queues)
ORDER BY name
LIMIT ?2
