-- The edges (child, parent) whose child is a job of workflow ?1, found by its steps (0028).
SELECT d.child_id, d.parent_id
FROM porter_workflow_steps s JOIN porter_job_deps d ON d.child_id = s.job_id
WHERE s.workflow_id = ?1
ORDER BY d.child_id, d.parent_id
