-- Edges are inserted without foreign-key checks (issue 16's 2x target); the cascade of a
-- deleted job to its edges moves to porter_jobs_emptied (0013), once per statement.
--
-- Each edge's two foreign keys ran two row-locking lookups of porter_jobs per edge
-- inserted (ri_triggers.c's SELECT ... FOR KEY SHARE): measured, 10,000 edges took ~120 ms to
-- insert with them and ~25 ms without, and a 10,000-step fan-out with its fan-in inserts
-- 19,996. They guard nothing the writers do not: every writer of edges takes its parents'
-- rows FOR UPDATE first and refuses a parent that does not exist (job_parents_mark.sql and
-- porter_enqueue, 0008; a workflow's own steps are inserted by the same transaction, unseen by
-- any other), and the child is the row its own statement inserts. So a parent cannot be
-- deleted between that check and the commit, and an edge never names a missing job.
--
-- ON DELETE CASCADE is kept as a statement trigger's two deletes by index (by parent,
-- porter_job_deps_parent; by child, the primary key), from the ids the statement deleted.
-- The deleted ids are taken into an array so that the plan (made once per session, blind to
-- the transition table's size) looks each one up by index rather than scanning the edges.
ALTER TABLE porter_job_deps DROP CONSTRAINT IF EXISTS porter_job_deps_child_id_fkey;
ALTER TABLE porter_job_deps DROP CONSTRAINT IF EXISTS porter_job_deps_parent_id_fkey;

CREATE OR REPLACE FUNCTION porter_jobs_emptied() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    gone BIGINT[];
BEGIN
    SELECT array_agg(d.id) INTO gone FROM porter_deleted d;
    IF gone IS NOT NULL THEN
        DELETE FROM porter_job_deps WHERE parent_id = ANY(gone);
        DELETE FROM porter_job_deps WHERE child_id = ANY(gone);
    END IF;
    DELETE FROM porter_workflows w
    WHERE w.id IN (SELECT d.workflow_id FROM porter_deleted d WHERE d.workflow_id IS NOT NULL)
      AND NOT EXISTS (SELECT 1 FROM porter_jobs j WHERE j.workflow_id = w.id);
    DELETE FROM porter_batches b
    WHERE b.id IN (SELECT d.batch_id FROM porter_deleted d WHERE d.batch_id IS NOT NULL)
      AND NOT EXISTS (SELECT 1 FROM porter_jobs j WHERE j.batch_id = b.id);
    RETURN NULL;
END
$fn$;
