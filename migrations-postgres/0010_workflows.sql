-- Workflows (issue 16.2): named graphs of jobs inserted in one transaction. Same tables,
-- columns and meaning as migrations-sqlite/0010_workflows.sql (see there); the differences
-- are commented below.
-- IF NOT EXISTS: a schema reset that drops porter_jobs but not this table (a script written
-- before it existed) migrates again, as 0006 does for porter_queue_starts.
CREATE TABLE IF NOT EXISTS porter_workflows (
    id         BIGSERIAL   PRIMARY KEY,
    name       TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

ALTER TABLE porter_jobs
    ADD COLUMN workflow_id BIGINT,
    ADD COLUMN workflow_step TEXT;
CREATE UNIQUE INDEX porter_jobs_workflow_step ON porter_jobs (workflow_id, workflow_step)
    WHERE workflow_id IS NOT NULL;

-- Difference: two transactions deleting a workflow's last two jobs at once each still see the
-- other's job (READ COMMITTED), so both keep the workflow row. Such a row is harmless (a
-- workflow listed with no steps left) and goes with no lock taken here: locking the workflow
-- row from a delete could deadlock two bulk deletes that reach workflows in other orders.
CREATE OR REPLACE FUNCTION porter_workflow_emptied() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    DELETE FROM porter_workflows
    WHERE id = OLD.workflow_id
      AND NOT EXISTS (SELECT 1 FROM porter_jobs WHERE workflow_id = OLD.workflow_id);
    RETURN NULL;
END
$fn$;

CREATE TRIGGER porter_workflows_emptied AFTER DELETE ON porter_jobs
FOR EACH ROW
WHEN (OLD.workflow_id IS NOT NULL)
EXECUTE FUNCTION porter_workflow_emptied();
