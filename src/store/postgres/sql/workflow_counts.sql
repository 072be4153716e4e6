-- How many of workflow $1's jobs are in each state (all of them, whatever page is read).
SELECT j.state, count(*)
FROM porter_workflow_steps s JOIN porter_jobs j ON j.id = s.job_id
WHERE s.workflow_id = $1
GROUP BY j.state
