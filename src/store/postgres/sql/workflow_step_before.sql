-- The job of the $3-th step (1 for the first) of workflow $1 above job $2 whose job is there,
-- in insertion order: where a page $3 steps in starts, when a step whose job is gone (deleted
-- with triggers off) would count in workflow_jobs.sql's OFFSET. Each step is looked up by key,
-- so this is asked only when such a step exists.
SELECT s.job_id FROM porter_workflow_steps s
WHERE s.workflow_id = $1 AND s.job_id > $2
  AND EXISTS (SELECT 1 FROM porter_jobs j WHERE j.id = s.job_id)
ORDER BY s.job_id
OFFSET $3 - 1 LIMIT 1
