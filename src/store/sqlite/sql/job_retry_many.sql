-- A bulk retry: job_retry.sql for every listed job (?1, a JSON array of ids) that waits for
-- nothing but a retry: not running (its worker finishes it first) and not already available.
UPDATE porter_jobs SET
    metadata = json_remove(metadata, '$.cancel_requested_at'),
    state = 'available',
    scheduled_at = porter_now(),
    finalized_at = NULL,
    max_attempts = max(max_attempts, attempt + 1)
WHERE id IN (SELECT value FROM json_each(?1)) AND state NOT IN ('running', 'available')
RETURNING id, queue, state, attempted_by
