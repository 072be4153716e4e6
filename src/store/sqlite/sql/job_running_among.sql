-- Of the jobs ?2 (a JSON array of ids: those whose handlers run in the worker now), the ones
-- running under worker ?1, as their fences: a run whose fence is not among them is no longer
-- its job's (the job was rescued, cancelled or claimed again while the worker stalled). By
-- primary key.
SELECT id, attempt, attempted_by FROM porter_jobs
WHERE id IN (SELECT value FROM json_each(?2)) AND state = 'running' AND attempted_by = ?1
ORDER BY id
