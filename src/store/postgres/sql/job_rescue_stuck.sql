-- Running jobs of one kind ($1) that started longer ago than its timeout plus margin ($2
-- seconds). SKIP LOCKED for the same reason as job_rescue_lost.sql.
UPDATE porter_jobs SET
    -- A job whose cancel a user requested is cancelled, not run again.
    state        = CASE WHEN metadata ? 'cancel_requested_at' THEN 'cancelled'
                        WHEN attempt >= max_attempts THEN 'discarded' ELSE 'retryable' END,
    scheduled_at = porter_now(),
    finalized_at = CASE WHEN metadata ? 'cancel_requested_at' OR attempt >= max_attempts THEN porter_now() END,
    errors       = errors || jsonb_build_array(jsonb_build_object('attempt', attempt, 'at', porter_now(), 'error', 'job ran past its timeout'))
WHERE id IN (
    SELECT id FROM porter_jobs
    WHERE state = 'running' AND kind = $1
      AND attempted_at < porter_now() - $2::float8 * interval '1 second'
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
RETURNING state
