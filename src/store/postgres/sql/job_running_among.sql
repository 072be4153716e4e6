-- Of the jobs $2 (by id: those whose handlers run in the worker now), the ones running under
-- worker $1, as their fences: a run whose fence is not among them is no longer its job's (the
-- job was rescued, cancelled or claimed again while the worker stalled). By primary key (see
-- job_cancel_requests.sql).
SELECT id, attempt, attempted_by FROM porter_jobs
WHERE id = ANY($2) AND state COLLATE "C" = 'running' AND attempted_by = $1
ORDER BY id
