-- Per queue with limits and per concurrency key: available due jobs, running jobs, the key's
-- starts in the per-key rate window, and the queue's starts in its rate window.
WITH lq AS (
    SELECT * FROM porter_queues
    WHERE concurrency IS NOT NULL OR per_key_concurrency IS NOT NULL OR rate_limit IS NOT NULL
       OR rate_per_key_limit IS NOT NULL
),
per_key AS (
    SELECT j.queue, j.concurrency_key AS k,
           count(*) FILTER (WHERE j.state = 'available' AND j.scheduled_at <= porter_now()) AS available,
           count(*) FILTER (WHERE j.state = 'running') AS running
    FROM porter_jobs j JOIN lq ON lq.name = j.queue
    WHERE j.state IN ('available', 'running')
    GROUP BY j.queue, j.concurrency_key
)
SELECT p.queue, p.k, p.available, p.running,
       (SELECT count(*) FROM porter_queue_starts s
        WHERE s.queue = p.queue AND s.concurrency_key = p.k
          AND s.started_at > porter_now() - lq.rate_per_key_period_ms * interval '1 millisecond') AS key_starts,
       (SELECT count(*) FROM porter_queue_starts s
        WHERE s.queue = p.queue
          AND s.started_at > porter_now() - lq.rate_period_ms * interval '1 millisecond') AS queue_starts
FROM per_key p JOIN lq ON lq.name = p.queue
