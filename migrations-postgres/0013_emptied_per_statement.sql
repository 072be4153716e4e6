-- A deleted workflow's (batch's) row goes with its last job, asked once per delete statement,
-- not once per deleted job. Same meaning as 0010's and 0011's row triggers.
--
-- Those asked, for each deleted job, whether its workflow (batch) had jobs left. The jobs the
-- same statement deleted stay in the index until vacuum, and each question walked all of them
-- to find them dead: deleting a workflow of N jobs read N^2 index entries (3,000 steps took
-- 2 s, 10,000 steps minutes). A statement trigger asks once per workflow (batch) the statement
-- touched, from the deleted rows (a transition table, which needs a statement trigger: it
-- cannot have a WHEN, so it runs after every delete and finds nothing to do in one scan of the
-- deleted rows when none had a workflow or a batch).
--
-- Concurrency as before (0010): two statements deleting a workflow's last two jobs at once
-- each still see the other's job (READ COMMITTED) and may both keep the workflow's row, which
-- is harmless (listed with no steps left); no lock is taken on the workflow row.
-- SQLite keeps its row triggers (migrations-sqlite/0013_emptied_per_statement.sql): a
-- deleted row leaves its indexes at once there, so each question is one index probe.
DROP TRIGGER porter_workflows_emptied ON porter_jobs;
DROP TRIGGER porter_batches_emptied ON porter_jobs;
DROP FUNCTION porter_workflow_emptied();
DROP FUNCTION porter_batch_emptied();

CREATE OR REPLACE FUNCTION porter_jobs_emptied() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    DELETE FROM porter_workflows w
    WHERE w.id IN (SELECT d.workflow_id FROM porter_deleted d WHERE d.workflow_id IS NOT NULL)
      AND NOT EXISTS (SELECT 1 FROM porter_jobs j WHERE j.workflow_id = w.id);
    DELETE FROM porter_batches b
    WHERE b.id IN (SELECT d.batch_id FROM porter_deleted d WHERE d.batch_id IS NOT NULL)
      AND NOT EXISTS (SELECT 1 FROM porter_jobs j WHERE j.batch_id = b.id);
    RETURN NULL;
END
$fn$;

CREATE TRIGGER porter_jobs_emptied AFTER DELETE ON porter_jobs
REFERENCING OLD TABLE AS porter_deleted
FOR EACH STATEMENT EXECUTE FUNCTION porter_jobs_emptied();
