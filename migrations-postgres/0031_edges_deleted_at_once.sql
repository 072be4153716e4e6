-- porter_jobs_emptied (0019, 0028, 0029) deletes a deleted job's edges in one statement.
--
-- It deleted the edges of the deleted jobs as parents, then as children, in two statements.
-- Two transactions deleting jobs at once (a retention pass beside an admin's bulk delete),
-- one a parent of a child the other deletes and the other way round, each locked its parents'
-- edges first and then waited for the edges the other held: PostgreSQL aborted one of the two
-- as a deadlock. One statement reads both sets of edges through the two indexes (a bitmap
-- OR) and locks them in the order of the table's rows, as every such delete does, so two of
-- them take turns. SQLite has one writer: nothing changes there.
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
        DELETE FROM porter_job_deps WHERE parent_id = ANY(gone) OR child_id = ANY(gone);
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
