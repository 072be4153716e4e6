-- Jobs due to run (available, or scheduled/retryable whose time has come: nobody promotes
-- those in a queue nobody claims from) per queue and kind, where no live worker serves the
-- pair. Live is judged as rescue judges it (job_rescue_lost.sql): a heartbeat within the
-- worker's own lease, or within $1 seconds (the default lease) for a registration without
-- one. A registration without queues or kinds (NULL: a binary from before migration 0009)
-- may serve anything and is counted as serving everything, and so is one whose queues or kinds
-- are of another shape than a list of names (another program's: the worker listing reads them
-- as not said; until 7 Dec such a registration served nothing, or on PostgreSQL an object's keys).
-- Cost: one pass over the due jobs (the fetch index's 'available' range and the due index),
-- grouped by (queue, kind), like queue_due.sql; then, per group, a look at the few rows of
-- porter_workers (`?` tests a top-level element of its short JSON arrays; the path is strict,
-- as lax mode would look inside a nested array and take `[["a"]]` for a list of names).
WITH due AS (
    SELECT queue, kind, count(*) AS n FROM porter_jobs
    WHERE state = 'available'
       OR (state IN ('scheduled','retryable') AND scheduled_at <= porter_now())
    GROUP BY queue, kind
)
SELECT queue, kind, n FROM due
WHERE NOT EXISTS (
    SELECT 1 FROM porter_workers w
    WHERE w.heartbeat_at >= porter_now() - COALESCE(CASE WHEN w.lease_ms > 40000000000000 THEN 40000000000000 WHEN w.lease_ms < -40000000000000 THEN -40000000000000 ELSE w.lease_ms END / 1000.0, $1::float8) * interval '1 second'
      AND (CASE WHEN w.queues IS NULL OR jsonb_typeof(w.queues) <> 'array' THEN true
            ELSE w.queues ? due.queue OR jsonb_path_exists(w.queues, 'strict $[*] ? (@.type() != "string")') END)
      AND (CASE WHEN w.kinds IS NULL OR jsonb_typeof(w.kinds) <> 'array' THEN true
            ELSE w.kinds ? due.kind OR jsonb_path_exists(w.kinds, 'strict $[*] ? (@.type() != "string")') END))
-- (by the names' bytes, as queue_list.sql orders)
ORDER BY queue COLLATE "C", kind COLLATE "C"
