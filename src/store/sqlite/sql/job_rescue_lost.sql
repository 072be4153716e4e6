-- Running jobs whose worker has not heartbeated within its own lease (lease_ms, as it
-- registered it), or within the rescuer's lease (?1, '-15.000 seconds') for a registration
-- without one (a binary from before migration 0003).
-- A worker lost by a crash, a kill or a partition does not use up its job's attempt (as for a
-- shutdown, max_attempts grows by one) for the job's first two such losses; from the third
-- on it counts, so a job that kills its worker every time still ends discarded. The count
-- is of the "worker lost" entries already in its history.
UPDATE porter_jobs SET
    -- A job whose cancel a user requested is cancelled, not run again.
    state        = CASE WHEN json_extract(metadata, '$.cancel_requested_at') IS NOT NULL THEN 'cancelled'
                        WHEN attempt >= max_attempts AND (SELECT count(*) FROM json_each(porter_jobs.errors)
                             WHERE json_extract(value, '$.error') = 'worker lost') >= 2 THEN 'discarded'
                        ELSE 'retryable' END,
    max_attempts = max_attempts + CASE WHEN (SELECT count(*) FROM json_each(porter_jobs.errors)
                        WHERE json_extract(value, '$.error') = 'worker lost') < 2 THEN 1 ELSE 0 END,
    scheduled_at = porter_now(),
    finalized_at = CASE WHEN json_extract(metadata, '$.cancel_requested_at') IS NOT NULL
                          OR (attempt >= max_attempts AND (SELECT count(*) FROM json_each(porter_jobs.errors)
                              WHERE json_extract(value, '$.error') = 'worker lost') >= 2)
                        THEN porter_now() END,
    errors       = json_insert(errors, '$[#]', json_object('attempt', attempt, 'at', porter_now(), 'error', 'worker lost'))
WHERE id IN (
    SELECT id FROM porter_jobs
    WHERE state = 'running'
      AND NOT EXISTS (
          SELECT 1 FROM porter_workers w
          WHERE w.id = porter_jobs.attempted_by
            -- Not COALESCE: printf reads a NULL lease as 0 and never gives NULL.
            AND w.heartbeat_at >= strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(),
                                           CASE WHEN w.lease_ms IS NULL THEN ?1
                                                ELSE printf('%+.3f seconds', -w.lease_ms / 1000.0) END))
    LIMIT ?2
)
RETURNING state, queue, kind
