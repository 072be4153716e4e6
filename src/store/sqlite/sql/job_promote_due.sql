-- Scheduled and retryable jobs that have come due become available (index porter_jobs_due).
UPDATE porter_jobs SET state = 'available'
WHERE queue = ?1 AND state IN ('scheduled','retryable') AND scheduled_at <= porter_now()
