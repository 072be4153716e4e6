-- porter copy --append: the rows of the tables that name jobs (edges, outputs, workflow steps)
-- whose job is not in the target, per table; and the rows that name a workflow or a batch
-- (steps, jobs) that is not there (review of 6 Dec: copied, they joined the target's workflow
-- or batch of that id). Porter's own deletes take such rows with their jobs; a TRUNCATE, or
-- another program's DELETE on SQLite with foreign keys off, leaves them, and a copied job (or
-- workflow, batch) of the same id would take them as its own. `missing`: what they name.
SELECT t, n, missing FROM (
    SELECT 'porter_job_deps' AS t, count(*) AS n, 'jobs' AS missing FROM porter_job_deps d
    WHERE NOT EXISTS (SELECT 1 FROM porter_jobs j WHERE j.id = d.child_id)
       OR NOT EXISTS (SELECT 1 FROM porter_jobs j WHERE j.id = d.parent_id)
    UNION ALL
    SELECT 'porter_job_outputs', count(*), 'jobs' FROM porter_job_outputs o
    WHERE NOT EXISTS (SELECT 1 FROM porter_jobs j WHERE j.id = o.job_id)
    UNION ALL
    SELECT 'porter_workflow_steps', count(*), 'jobs' FROM porter_workflow_steps s
    WHERE NOT EXISTS (SELECT 1 FROM porter_jobs j WHERE j.id = s.job_id)
    UNION ALL
    SELECT 'porter_jobs', count(*), 'workflows or batches' FROM porter_jobs j
    WHERE (j.workflow_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM porter_workflows w WHERE w.id = j.workflow_id))
       OR (j.batch_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM porter_batches b WHERE b.id = j.batch_id))
    UNION ALL
    SELECT 'porter_workflow_steps', count(*), 'workflows or batches' FROM porter_workflow_steps s
    WHERE NOT EXISTS (SELECT 1 FROM porter_workflows w WHERE w.id = s.workflow_id)
) dangling
WHERE n > 0
ORDER BY missing, t
