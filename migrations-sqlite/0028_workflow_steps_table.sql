-- A workflow's steps move from an index of porter_jobs to a table written once, at insert.
-- Same meaning as migrations-postgres/0028_workflow_steps_table.sql, which says why: on
-- PostgreSQL every new version of a step's row added an entry to the index. SQLite only
-- touches an index whose columns change, so here it is for the two backends to keep the same
-- tables (`porter copy`) and the same statements.
-- IF NOT EXISTS, as porter_workflows (0010): a reset that drops porter_jobs and the bookkeeping
-- but keeps the tables beside them migrates again; the steps of jobs gone are deleted.
CREATE TABLE IF NOT EXISTS porter_workflow_steps (
    workflow_id INTEGER NOT NULL,
    step        TEXT    NOT NULL,
    job_id      INTEGER NOT NULL,
    PRIMARY KEY (workflow_id, step)
) WITHOUT ROWID;

DELETE FROM porter_workflow_steps
WHERE NOT EXISTS (SELECT 1 FROM porter_jobs j
                  WHERE j.id = porter_workflow_steps.job_id
                    AND j.workflow_id = porter_workflow_steps.workflow_id);
INSERT INTO porter_workflow_steps (workflow_id, step, job_id)
SELECT workflow_id, workflow_step, id FROM porter_jobs
WHERE workflow_id IS NOT NULL AND workflow_step IS NOT NULL
ON CONFLICT DO NOTHING;

DROP INDEX IF EXISTS porter_jobs_workflow_step;

-- As 0010, with a deleted job's step deleted by its key, and "has this workflow jobs left"
-- asked of the steps.
DROP TRIGGER IF EXISTS porter_workflows_emptied;
CREATE TRIGGER porter_workflows_emptied AFTER DELETE ON porter_jobs
WHEN OLD.workflow_id IS NOT NULL
BEGIN
    DELETE FROM porter_workflow_steps
    WHERE workflow_id = OLD.workflow_id AND step = OLD.workflow_step AND job_id = OLD.id;
    DELETE FROM porter_workflows
    WHERE id = OLD.workflow_id
      AND NOT EXISTS (SELECT 1 FROM porter_workflow_steps WHERE workflow_id = OLD.workflow_id);
END;
