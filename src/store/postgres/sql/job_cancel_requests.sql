-- The running jobs of one worker ($1) whose cancel a user requested (see job_cancel.sql).
-- Walks porter_jobs_running (this worker's running jobs only).
SELECT id, attempt, attempted_by FROM porter_jobs
WHERE state = 'running' AND attempted_by = $1 AND metadata ? 'cancel_requested_at'
ORDER BY id
