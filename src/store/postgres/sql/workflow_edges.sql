-- The edges (child, parent) whose child is a job of workflow $1.
SELECT d.child_id, d.parent_id
FROM porter_job_deps d JOIN porter_jobs c ON c.id = d.child_id
WHERE c.workflow_id = $1
ORDER BY d.child_id, d.parent_id
