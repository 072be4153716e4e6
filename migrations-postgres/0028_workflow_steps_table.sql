-- A workflow's steps move from an index of porter_jobs to a table written once, at insert
-- (issue 16's 2x target).
--
-- porter_jobs_workflow_step (0010) indexed every workflow job by (workflow_id, step). An
-- UPDATE that changes an indexed column (state, in porter_jobs_fetch) is never HOT, so each
-- new version of a step's row (its claim, its completion, its promotion) added an entry to
-- this index too, though the step never changes. Measured on a 100 x 100 chain (pgbench
-- replay of porter's claim and completion, paired runs): a link took 0.87 of the time without
-- it.
--
-- porter_workflow_steps answers what the index did: a workflow's jobs (by its primary key),
-- one step name per workflow (the same key), and whether a workflow has jobs left
-- (porter_jobs_emptied). porter_jobs keeps workflow_id and workflow_step: a job still says
-- which workflow and step it is, read by primary key. The library writes a step's row in the
-- transaction that inserts its job; porter_jobs_emptied deletes it with the job.
-- Writers of porter_jobs wait until this migration commits, so that no workflow is inserted
-- between the copy below and the commit. (Processes started before 0028 write no steps: see
-- the README's guarantees, "Upgrading past migration 0028".)
LOCK TABLE porter_jobs IN EXCLUSIVE MODE;
DROP INDEX IF EXISTS porter_jobs_workflow_step;

-- IF NOT EXISTS, as porter_workflows (0010): a reset that drops porter_jobs and the bookkeeping
-- but keeps the tables beside them migrates again; the steps of jobs gone are deleted.
CREATE TABLE IF NOT EXISTS porter_workflow_steps (
    workflow_id BIGINT NOT NULL,
    step        TEXT   NOT NULL,
    job_id      BIGINT NOT NULL,
    PRIMARY KEY (workflow_id, step)
);

DELETE FROM porter_workflow_steps
WHERE NOT EXISTS (SELECT 1 FROM porter_jobs j
                  WHERE j.id = porter_workflow_steps.job_id
                    AND j.workflow_id = porter_workflow_steps.workflow_id);
INSERT INTO porter_workflow_steps (workflow_id, step, job_id)
SELECT workflow_id, workflow_step, id FROM porter_jobs
WHERE workflow_id IS NOT NULL AND workflow_step IS NOT NULL
ON CONFLICT DO NOTHING;

-- As 0019, with a deleted job's step deleted by its key (and its job: a step is the job it
-- names), and "has this workflow jobs left" asked of the steps. The deleted steps are taken
-- into arrays, as 0019's ids are: the plan, made once per session, joins them to the steps by
-- the primary key when the steps outnumber them, and by a scan of the steps when not.
CREATE OR REPLACE FUNCTION porter_jobs_emptied() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    gone BIGINT[];
    flows BIGINT[];
    steps TEXT[];
    jobs BIGINT[];
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
        DELETE FROM porter_workflows w
        WHERE w.id = ANY(flows)
          AND NOT EXISTS (SELECT 1 FROM porter_workflow_steps s WHERE s.workflow_id = w.id);
    END IF;
    DELETE FROM porter_batches b
    WHERE b.id IN (SELECT d.batch_id FROM porter_deleted d WHERE d.batch_id IS NOT NULL)
      AND NOT EXISTS (SELECT 1 FROM porter_jobs j WHERE j.batch_id = b.id);
    RETURN NULL;
END
$fn$;
