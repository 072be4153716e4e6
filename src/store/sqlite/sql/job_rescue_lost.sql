-- Metadata is read as CAST(metadata AS TEXT): a BLOB holding JSON text (another program's,
-- through an SQLite before 3.45) is otherwise read as binary JSON (review of 7 Dec).
-- Running jobs whose worker has not heartbeated within its own lease (lease_ms, as it
-- registered it), or within the rescuer's lease (?1, '-15.000 seconds') for a registration
-- without one (a binary from before migration 0003).
-- A worker lost by a crash, a kill or a partition does not use up its job's attempt (as for a
-- shutdown, max_attempts grows by one) for the job's first two such losses; from the third
-- on it counts, so a job that kills its worker every time still ends discarded. The count
-- is of this statement's own entries already in its history, marked `"lost": true`, not of
-- every entry reading "worker lost" (a job's own failure may say so: review of 6 Dec; entries
-- written before the mark are not counted, so a job lost then has up to two more losses
-- forgiven). Read only from an array of objects: another program may have written anything
-- there, and json_extract fails on a bare string.
-- A lease or stuck limit another program wrote past what a time can be moved by (9e18 ms, a
-- limit of 1e400) is read as 40,000,000,000,000 ms, about 1,268 years (porter takes leases and
-- timeouts up to 1,000 years): it failed every pass on PostgreSQL ("interval out of range").
UPDATE porter_jobs SET
    -- A job whose cancel a user requested is cancelled, not run again.
    state        = CASE WHEN json_extract(CAST(metadata AS TEXT), '$.cancel_requested_at') IS NOT NULL THEN 'cancelled'
                        WHEN attempt >= max_attempts AND (SELECT count(*) FROM json_each(CASE WHEN NOT json_valid(porter_jobs.errors) THEN '[]' WHEN json_type(porter_jobs.errors) = 'array' THEN porter_jobs.errors ELSE '[]' END)
                             WHERE CASE WHEN type = 'object' THEN json_type(value, '$.lost') END = 'true') >= 2 THEN 'discarded'
                        ELSE 'retryable' END,
    max_attempts = max_attempts + CASE WHEN (SELECT count(*) FROM json_each(CASE WHEN NOT json_valid(porter_jobs.errors) THEN '[]' WHEN json_type(porter_jobs.errors) = 'array' THEN porter_jobs.errors ELSE '[]' END)
                        WHERE CASE WHEN type = 'object' THEN json_type(value, '$.lost') END = 'true') < 2 THEN 1 ELSE 0 END,
    scheduled_at = porter_now(),
    finalized_at = CASE WHEN json_extract(CAST(metadata AS TEXT), '$.cancel_requested_at') IS NOT NULL
                          OR (attempt >= max_attempts AND (SELECT count(*) FROM json_each(CASE WHEN NOT json_valid(porter_jobs.errors) THEN '[]' WHEN json_type(porter_jobs.errors) = 'array' THEN porter_jobs.errors ELSE '[]' END)
                              WHERE CASE WHEN type = 'object' THEN json_type(value, '$.lost') END = 'true') >= 2)
                        THEN porter_now() END,
    errors       = json_insert(CASE WHEN NOT json_valid(errors) THEN '[]' WHEN json_type(errors) = 'array' THEN errors ELSE '[]' END, '$[#]', json_object('attempt', attempt, 'at', porter_now(), 'error', 'worker lost', 'lost', json('true')))
WHERE id IN (
    SELECT id FROM porter_jobs
    WHERE state = 'running'
      -- A rescue by a worker (?3) judges nobody unless that worker's own heartbeat was
      -- recorded within half its lease and has been steady for a whole lease (see migration
      -- 0024): after a stall of its own (stopped, or the database locked for all), every
      -- heartbeat looks old until each worker's held-up one is through, and live workers
      -- would be judged lost, by a pass sent before the stall and run only now as well.
      AND (?3 IS NULL OR EXISTS (
          SELECT 1 FROM porter_workers me
          WHERE me.id = ?3
            AND (me.lease_ms IS NULL
                 OR (me.heartbeat_at >= strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(),
                                                 printf('%+.3f seconds', max(min(-me.lease_ms / 2000.0, 20000000000.0), -20000000000.0)))
                     AND coalesce(me.steady_since, me.started_at) <= strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(),
                                                         printf('%+.3f seconds', max(min(-me.lease_ms / 1000.0, 40000000000.0), -40000000000.0)))))))
      AND NOT EXISTS (
          SELECT 1 FROM porter_workers w
          WHERE w.id = porter_jobs.attempted_by
            -- Not COALESCE: printf reads a NULL lease as 0 and never gives NULL.
            AND w.heartbeat_at >= strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(),
                                           CASE WHEN w.lease_ms IS NULL THEN ?1
                                                ELSE printf('%+.3f seconds', max(min(-w.lease_ms / 1000.0, 40000000000.0), -40000000000.0)) END))
      -- The gate above sees stalls of the rescuer's lease's measure only: a rescuer with a
      -- long lease heartbeats too seldom to see a stall shorter than half its lease, which may
      -- be longer than a short-lease worker's whole lease (review of 7 Dec: a 60 s rescuer
      -- judged a live 15 s worker lost after a 20 s lock). So a worker of a shorter lease than
      -- the rescuer's is judged once silent for the rescuer's lease too, or once a worker
      -- whose lease is no longer than the judged one's vouches for the time: its heartbeat
      -- fresh (within half its lease) and steady for the judged worker's lease.
      AND (?3 IS NULL
           OR NOT EXISTS (
               SELECT 1 FROM porter_workers w
               WHERE w.id = porter_jobs.attempted_by
                 AND w.heartbeat_at >= strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(), ?1))
           OR EXISTS (
               SELECT 1 FROM porter_workers w, porter_workers x
               WHERE w.id = porter_jobs.attempted_by AND w.lease_ms IS NOT NULL AND x.lease_ms IS NOT NULL
                 AND x.lease_ms <= w.lease_ms
                 AND x.heartbeat_at >= strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(),
                                                printf('%+.3f seconds', max(min(-x.lease_ms / 2000.0, 20000000000.0), -20000000000.0)))
                 AND coalesce(x.steady_since, x.started_at) <= strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(),
                                                printf('%+.3f seconds', max(min(-w.lease_ms / 1000.0, 40000000000.0), -40000000000.0)))))
    LIMIT ?2
)
RETURNING state, queue, kind
