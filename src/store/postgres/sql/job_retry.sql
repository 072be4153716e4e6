-- A user retries a job that is not running: available now, history kept, and at least one
-- attempt left.
UPDATE porter_jobs SET
    state = 'available',
    scheduled_at = porter_now(),
    finalized_at = NULL,
    max_attempts = GREATEST(max_attempts, attempt + 1)
WHERE id = $1 AND state <> 'running'
RETURNING *
