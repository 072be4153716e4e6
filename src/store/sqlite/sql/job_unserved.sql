-- Jobs due to run (available, or scheduled/retryable whose time has come: nobody promotes
-- those in a queue nobody claims from) per queue and kind, where no live worker serves the
-- pair. Live is judged as rescue judges it (job_rescue_lost.sql): a heartbeat within the
-- worker's own lease, or within ?1 ('-15.000 seconds', the default lease) for a registration
-- without one. A registration without queues or kinds (NULL: a binary from before migration
-- 0009) may serve anything and is counted as serving everything, and so is one whose queues or kinds
-- are of another shape than a list of names (another program's: the worker listing reads them
-- as not said; until 7 Dec such a registration served nothing, or on PostgreSQL an object's keys).
-- Cost: one pass over the due jobs (the fetch index's 'available' range and the due index),
-- grouped by (queue, kind), like queue_due.sql; then, per group, a look at the few rows of
-- porter_workers. Its JSON arrays are short (a worker's queues and kinds).
-- The two groups are two parts, as in queue_due.sql (which says why).
WITH due AS (
    SELECT queue, kind, count(*) AS n
    FROM (SELECT queue, kind FROM porter_jobs WHERE state = 'available'
          UNION ALL
          SELECT queue, kind FROM porter_jobs
          WHERE state IN ('scheduled','retryable') AND scheduled_at <= porter_now())
    GROUP BY queue, kind
)
SELECT queue, kind, n FROM due
WHERE NOT EXISTS (
    SELECT 1 FROM porter_workers w
    -- Not COALESCE: printf reads a NULL lease as 0 and never gives NULL.
    WHERE w.heartbeat_at >= strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(),
                                     CASE WHEN w.lease_ms IS NULL THEN ?1
                                          ELSE printf('%+.3f seconds', max(min(-w.lease_ms / 1000.0, 40000000000.0), -40000000000.0)) END)
      AND (w.queues IS NULL OR json_type(w.queues) <> 'array'
       OR EXISTS (SELECT 1 FROM json_each(w.queues) WHERE type <> 'text' OR value = due.queue))
      AND (w.kinds IS NULL OR json_type(w.kinds) <> 'array'
       OR EXISTS (SELECT 1 FROM json_each(w.kinds) WHERE type <> 'text' OR value = due.kind)))
ORDER BY queue, kind
