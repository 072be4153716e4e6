-- Workflows (issue 16.2): named graphs of jobs inserted in one transaction. A workflow is a row
-- of porter_workflows (its id and name); each of its jobs carries the workflow's id and its
-- step's name. The waiting itself is 0007's: a step is a job with dependencies on earlier
-- steps (porter_job_deps), so nothing here runs when a job ends.
-- Same meaning as migrations-postgres/0010_workflows.sql.
CREATE TABLE porter_workflows (
    id         INTEGER PRIMARY KEY AUTOINCREMENT, -- AUTOINCREMENT: ids never reused after deletes
    name       TEXT    NOT NULL,
    created_at TEXT    NOT NULL
);

ALTER TABLE porter_jobs ADD COLUMN workflow_id INTEGER;
ALTER TABLE porter_jobs ADD COLUMN workflow_step TEXT;
-- A workflow's steps, and one step name per workflow.
CREATE UNIQUE INDEX porter_jobs_workflow_step ON porter_jobs (workflow_id, workflow_step)
    WHERE workflow_id IS NOT NULL;

-- A workflow whose last job is deleted (retention, a bulk delete) goes with it, so that
-- `porter workflows list` shows no empty workflows.
CREATE TRIGGER porter_workflows_emptied AFTER DELETE ON porter_jobs
WHEN OLD.workflow_id IS NOT NULL
BEGIN
    DELETE FROM porter_workflows
    WHERE id = OLD.workflow_id
      AND NOT EXISTS (SELECT 1 FROM porter_jobs WHERE workflow_id = OLD.workflow_id);
END;
