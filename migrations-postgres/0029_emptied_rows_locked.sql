-- porter_jobs_emptied (0013, 0019, 0028) locks the workflows and batches it asks about before it
-- asks whether they have jobs left.
--
-- Two transactions that deleted the last jobs of one workflow (or batch) at once each asked
-- while the other's job was still there to its snapshot, and neither deleted the row: the
-- empty workflow stayed in `porter workflows list` for good (two retention passes, or an
-- admin's delete beside one). Now each locks the rows first, in id order; the second waits
-- for the first to commit and, under READ COMMITTED (every statement of the trigger takes a
-- new snapshot), then sees its deletes and deletes the row.
--
-- 0010 and 0011 took no lock on purpose: their row triggers met workflows in the order a
-- statement deleted its rows, so two bulk deletes could lock them in opposite orders and
-- deadlock. Since 0013 the trigger runs once per statement and locks in id order, so porter's
-- deletes (one statement per transaction each) cannot. A hand-written transaction that runs
-- several deletes can still deadlock with another one (PostgreSQL aborts one of the two; run
-- again, it goes through). Under REPEATABLE READ the trigger's questions keep the
-- transaction's snapshot, so such a row may still be left there (as before); SERIALIZABLE
-- aborts one of the two transactions instead. SQLite has one writer: nothing changes there.
CREATE OR REPLACE FUNCTION porter_jobs_emptied() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    gone BIGINT[];
    flows BIGINT[];
    steps TEXT[];
    jobs BIGINT[];
    batches BIGINT[];
BEGIN
    SELECT array_agg(d.id) INTO gone FROM porter_deleted d;
    IF gone IS NOT NULL THEN
        DELETE FROM porter_job_deps WHERE parent_id = ANY(gone);
        DELETE FROM porter_job_deps WHERE child_id = ANY(gone);
    END IF;
    SELECT array_agg(d.workflow_id), array_agg(d.workflow_step), array_agg(d.id)
    INTO flows, steps, jobs
    FROM porter_deleted d WHERE d.workflow_id IS NOT NULL;
    IF flows IS NOT NULL THEN
        DELETE FROM porter_workflow_steps s
        USING unnest(flows, steps, jobs) AS g(workflow_id, step, job_id)
        WHERE s.workflow_id = g.workflow_id AND s.step = g.step AND s.job_id = g.job_id;
        PERFORM 1 FROM porter_workflows WHERE id = ANY(flows) ORDER BY id FOR UPDATE;
        DELETE FROM porter_workflows w
        WHERE w.id = ANY(flows)
          AND NOT EXISTS (SELECT 1 FROM porter_workflow_steps s WHERE s.workflow_id = w.id);
    END IF;
    SELECT array_agg(DISTINCT d.batch_id) INTO batches
    FROM porter_deleted d WHERE d.batch_id IS NOT NULL;
    IF batches IS NOT NULL THEN
        PERFORM 1 FROM porter_batches WHERE id = ANY(batches) ORDER BY id FOR UPDATE;
        DELETE FROM porter_batches b
        WHERE b.id = ANY(batches)
          AND NOT EXISTS (SELECT 1 FROM porter_jobs j WHERE j.batch_id = b.id);
    END IF;
    RETURN NULL;
END
$fn$;
