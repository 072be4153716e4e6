-- Per queue with limits and per concurrency key: available due jobs, running jobs, the key's
-- starts in the per-key rate window, and the queue's starts in its rate window.
WITH lq AS (
    SELECT * FROM porter_queues
    WHERE concurrency IS NOT NULL OR per_key_concurrency IS NOT NULL OR rate_limit IS NOT NULL
       OR rate_per_key_limit IS NOT NULL
),
per_key AS (
    SELECT j.queue, j.concurrency_key AS k,
           sum(CASE WHEN j.state = 'available' AND j.scheduled_at <= porter_now() THEN 1 ELSE 0 END) AS available,
           sum(CASE WHEN j.state = 'running' THEN 1 ELSE 0 END) AS running
    FROM porter_jobs j JOIN lq ON lq.name = j.queue
    WHERE j.state IN ('available', 'running')
    GROUP BY j.queue, j.concurrency_key
)
SELECT p.queue, p.k, p.available, p.running,
       (SELECT count(*) FROM porter_queue_starts s
        WHERE s.queue = p.queue AND s.concurrency_key = p.k AND lq.rate_per_key_period_ms IS NOT NULL
          AND s.started_at > strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(),
                                      printf('%+.3f seconds', -lq.rate_per_key_period_ms / 1000.0))),
       (SELECT count(*) FROM porter_queue_starts s
        WHERE s.queue = p.queue AND lq.rate_period_ms IS NOT NULL
          AND s.started_at > strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(),
                                      printf('%+.3f seconds', -lq.rate_period_ms / 1000.0)))
FROM per_key p JOIN lq ON lq.name = p.queue
