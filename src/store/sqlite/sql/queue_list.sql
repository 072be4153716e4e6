-- Queues with settings, and queues that only jobs name. The latter are read from the index of
-- each group of states (as job_counts.sql does), not by a scan of porter_jobs: since 0041 no
-- index holds every job. Differs from PostgreSQL, which scans the table for them (a sequential
-- scan there cost about what a walk of the old porter_jobs_fetch did).
SELECT name, paused_at, concurrency, per_key_concurrency, rate_limit, rate_period_ms,
       rate_per_key_limit, rate_per_key_period_ms
FROM porter_queues
UNION
SELECT DISTINCT queue, NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM (SELECT queue FROM porter_jobs WHERE state = 'available'
      UNION SELECT queue FROM porter_jobs WHERE state = 'running'
      UNION SELECT queue FROM porter_jobs WHERE state = 'pending'
      UNION SELECT queue FROM porter_jobs WHERE state IN ('scheduled','retryable')
      UNION SELECT queue FROM porter_jobs WHERE state IN ('completed','cancelled','discarded'))
WHERE queue NOT IN (SELECT name FROM porter_queues)
ORDER BY name
