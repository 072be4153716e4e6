-- Running jobs of one kind (?1) that started longer ago than its timeout plus margin (?2).
UPDATE porter_jobs SET
    -- A job whose cancel a user requested is cancelled, not run again.
    state        = CASE WHEN json_extract(metadata, '$.cancel_requested_at') IS NOT NULL THEN 'cancelled'
                        WHEN attempt >= max_attempts THEN 'discarded' ELSE 'retryable' END,
    scheduled_at = porter_now(),
    finalized_at = CASE WHEN json_extract(metadata, '$.cancel_requested_at') IS NOT NULL OR attempt >= max_attempts
                        THEN porter_now() END,
    errors       = json_insert(errors, '$[#]', json_object('attempt', attempt, 'at', porter_now(), 'error', 'job ran past its timeout'))
WHERE id IN (
    SELECT id FROM porter_jobs
    WHERE state = 'running' AND kind = ?1
      AND attempted_at < strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(), ?2)
    LIMIT ?3
)
RETURNING state
