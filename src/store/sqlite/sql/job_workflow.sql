-- The workflow job ?1 is a step of: its id, its name, and the step's name.
SELECT w.id, w.name, j.workflow_step
FROM porter_jobs j JOIN porter_workflows w ON w.id = j.workflow_id
WHERE j.id = ?1
