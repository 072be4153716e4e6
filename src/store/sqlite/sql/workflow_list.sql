-- A page of workflows, newest first (below ?1 when given, at most ?2), with their steps'
-- counts by state: one row per (workflow, state), and one row with a NULL state for a
-- workflow with no jobs left.
SELECT w.id, w.name, w.created_at, j.state, count(j.id)
FROM (SELECT id, name, created_at FROM porter_workflows
      WHERE ?1 IS NULL OR id < ?1 ORDER BY id DESC LIMIT ?2) w
LEFT JOIN porter_workflow_steps s ON s.workflow_id = w.id
LEFT JOIN porter_jobs j ON j.id = s.job_id
GROUP BY w.id, j.state
ORDER BY w.id DESC
