-- Scheduled and retryable jobs that have come due become available (index porter_jobs_due).
-- Differs from SQLite (a plain UPDATE inside its one writer): producers of several processes
-- run this at once here, so rows another one is promoting are skipped, not waited for.
UPDATE porter_jobs SET state = 'available'
WHERE id IN (
    SELECT id FROM porter_jobs
    WHERE queue = $1 AND state IN ('scheduled','retryable') AND scheduled_at <= porter_now()
    FOR UPDATE SKIP LOCKED
)
