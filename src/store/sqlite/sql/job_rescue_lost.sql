-- Running jobs whose worker has not heartbeated within the lease (?1, '-15.000 seconds').
UPDATE porter_jobs SET
    -- A job whose cancel a user requested is cancelled, not run again.
    state        = CASE WHEN json_extract(metadata, '$.cancel_requested_at') IS NOT NULL THEN 'cancelled'
                        WHEN attempt >= max_attempts THEN 'discarded' ELSE 'retryable' END,
    scheduled_at = porter_now(),
    finalized_at = CASE WHEN json_extract(metadata, '$.cancel_requested_at') IS NOT NULL OR attempt >= max_attempts
                        THEN porter_now() END,
    errors       = json_insert(errors, '$[#]', json_object('attempt', attempt, 'at', porter_now(), 'error', 'worker lost'))
WHERE id IN (
    SELECT id FROM porter_jobs
    WHERE state = 'running'
      AND NOT EXISTS (
          SELECT 1 FROM porter_workers w
          WHERE w.id = porter_jobs.attempted_by
            AND w.heartbeat_at >= strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(), ?1))
    LIMIT ?2
)
RETURNING state
