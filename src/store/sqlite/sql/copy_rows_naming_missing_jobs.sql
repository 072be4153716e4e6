-- porter copy --append: the rows of the tables that name jobs (edges, outputs, workflow steps)
-- whose job is not in the target, per table. Porter's own deletes take such rows with their
-- jobs; a TRUNCATE, or another program's DELETE on SQLite with foreign keys off, leaves them,
-- and a copied job of the same id would take them as its own.
SELECT t, n FROM (
    SELECT 'porter_job_deps' AS t, count(*) AS n FROM porter_job_deps d
    WHERE NOT EXISTS (SELECT 1 FROM porter_jobs j WHERE j.id = d.child_id)
       OR NOT EXISTS (SELECT 1 FROM porter_jobs j WHERE j.id = d.parent_id)
    UNION ALL
    SELECT 'porter_job_outputs', count(*) FROM porter_job_outputs o
    WHERE NOT EXISTS (SELECT 1 FROM porter_jobs j WHERE j.id = o.job_id)
    UNION ALL
    SELECT 'porter_workflow_steps', count(*) FROM porter_workflow_steps s
    WHERE NOT EXISTS (SELECT 1 FROM porter_jobs j WHERE j.id = s.job_id)
) dangling
WHERE n > 0
ORDER BY t
