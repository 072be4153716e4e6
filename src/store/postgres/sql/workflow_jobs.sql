-- A page of a workflow's jobs in insertion order, found by its steps (porter_workflow_steps,
-- 0028): those above job $2 (0 for the first), $4 of them skipped, at most $3 (NULL: all).
SELECT j.id, s.step, j.kind, j.state, j.attempt, j.attempted_at, j.finalized_at
FROM porter_workflow_steps s JOIN porter_jobs j ON j.id = s.job_id
WHERE s.workflow_id = $1 AND s.job_id > $2
ORDER BY s.job_id
LIMIT $3 OFFSET $4
