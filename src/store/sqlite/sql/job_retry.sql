-- A user retries a job that is not running: available now, history kept, and at least one
-- attempt left. An earlier cancel request is cleared: it was for the run that stopped.
UPDATE porter_jobs SET
    metadata = json_remove(metadata, '$.cancel_requested_at'),
    state = 'available',
    scheduled_at = porter_now(),
    finalized_at = NULL,
    max_attempts = max(max_attempts, attempt + 1)
WHERE id = ?1 AND state <> 'running'
RETURNING *
