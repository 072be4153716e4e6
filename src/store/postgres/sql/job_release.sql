-- Fenced. A running job its own worker gives back (stopped by a shutdown, or found by the
-- worker's reconcile) is due again at once without using up an attempt: as in job_snooze, the
-- attempt counter stays (fences stay unique) and max_attempts grows by one. $4 is the reason,
-- kept in the error history.
UPDATE porter_jobs SET
    state        = 'available',
    scheduled_at = porter_now(),
    max_attempts = max_attempts + 1,
    errors       = errors || jsonb_build_array(jsonb_build_object('attempt', attempt, 'at', porter_now(), 'error', $4::text))
WHERE id = $1 AND state = 'running' AND attempt = $2 AND attempted_by = $3
RETURNING *
