-- A workflow's jobs in insertion order, found by its steps (porter_workflow_steps, 0028).
SELECT j.id, s.step, j.kind, j.state, j.attempt, j.attempted_at, j.finalized_at
FROM porter_workflow_steps s JOIN porter_jobs j ON j.id = s.job_id
WHERE s.workflow_id = $1
ORDER BY j.id
