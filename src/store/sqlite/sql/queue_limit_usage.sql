-- Per queue with limits and per concurrency key: available due jobs, running jobs, the key's
-- starts in the per-key rate window, and the queue's starts in its rate window.
-- Available and running jobs are read as two parts, each from an index of its state
-- (porter_jobs_fetch, porter_jobs_running_key, both with `queue` first): since 0041 no index
-- holds both states, and one `state IN` over them scanned the table.
WITH lq AS (
    SELECT * FROM porter_queues
    WHERE concurrency IS NOT NULL OR per_key_concurrency IS NOT NULL OR rate_limit IS NOT NULL
       OR rate_per_key_limit IS NOT NULL
),
per_key AS (
    SELECT u.queue, u.concurrency_key AS k,
           sum(CASE WHEN u.state = 'available' AND u.scheduled_at <= porter_now() THEN 1 ELSE 0 END) AS available,
           sum(CASE WHEN u.state = 'running' THEN 1 ELSE 0 END) AS running
    FROM (SELECT j.queue, j.concurrency_key, j.state, j.scheduled_at
          FROM lq JOIN porter_jobs j ON j.queue = lq.name AND j.state = 'available'
          UNION ALL
          SELECT j.queue, j.concurrency_key, j.state, j.scheduled_at
          FROM lq JOIN porter_jobs j ON j.queue = lq.name AND j.state = 'running') u
    GROUP BY u.queue, u.concurrency_key
),
-- The queue's starts in its window, counted once per queue: counted beside each key, a
-- queue with a day's window of a million starts and 2,000 keys took 81 s, and every /metrics
-- scrape timed out (review of 7 Dec).
qs AS MATERIALIZED (
    SELECT lq.name AS queue,
           (SELECT count(*) FROM porter_queue_starts s
            WHERE s.queue = lq.name AND lq.rate_period_ms IS NOT NULL
              AND s.started_at > strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(),
                                          printf('%+.3f seconds', -lq.rate_period_ms / 1000.0))) AS n
    FROM lq
)
SELECT p.queue, p.k, p.available, p.running,
       (SELECT count(*) FROM porter_queue_starts s
        WHERE s.queue = p.queue AND s.concurrency_key = p.k AND lq.rate_per_key_period_ms IS NOT NULL
          AND s.started_at > strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(),
                                      printf('%+.3f seconds', -lq.rate_per_key_period_ms / 1000.0))),
       qs.n
FROM per_key p JOIN lq ON lq.name = p.queue JOIN qs ON qs.queue = p.queue
