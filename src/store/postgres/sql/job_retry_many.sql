-- A bulk retry: job_retry.sql for every listed job ($1) that waits for nothing but a retry:
-- not running (its worker finishes it first) and not already available.
UPDATE porter_jobs SET
    metadata = metadata - 'cancel_requested_at',
    state = 'available',
    scheduled_at = porter_now(),
    finalized_at = NULL,
    max_attempts = greatest(max_attempts, attempt + 1)
WHERE id = ANY($1::bigint[]) AND state NOT IN ('running', 'available')
RETURNING id, queue, state, attempted_by
