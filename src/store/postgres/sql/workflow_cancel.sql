-- Cancels every unfinished job of workflow $1, as job_cancel.sql does each (a running one only
-- records the request; its worker is told by NOTIFY porter_cancel, sent by the caller in this
-- transaction). One statement, unlike SQLite (see its workflow_unfinished.sql): PostgreSQL
-- runs AFTER ROW triggers at the end of the statement, when every step is already final, so
-- the porter_jobs_finalized trigger promotes or cancels nothing.
-- Differs from SQLite (one writer): the sequence locks of the steps first, in the order of their
-- numbers (see job_complete.sql), before any row. A step of a sequence that ends here promotes the
-- sequence's next job under its lock (porter_job_finalized); taken there, after the rows, it
-- met a bulk cancel holding the lock and waiting for a step's row, a deadlock.
WITH locked AS MATERIALIZED (
    SELECT count(pg_advisory_xact_lock(1886350450, h)) AS n
    FROM (SELECT DISTINCT hashtext(j.sequence_key) AS h
          FROM porter_workflow_steps s JOIN porter_jobs j ON j.id = s.job_id
          WHERE s.workflow_id = $1 AND j.sequence_key IS NOT NULL ORDER BY 1) keys
),
-- Then the steps' rows, in id order (see job_cancel_many.sql): the update's own scan meets
-- them in the order of the steps' names, or of a hash. With them the waiting jobs below them,
-- as the bulk cancel takes them.
rows AS MATERIALIZED (
    SELECT count(*) AS n FROM (
        SELECT id FROM porter_jobs
        WHERE id IN (
            WITH RECURSIVE reach(id) AS (
                SELECT job_id FROM porter_workflow_steps WHERE workflow_id = $1
                UNION
                SELECT d.child_id FROM reach r
                JOIN porter_job_deps d ON d.parent_id = r.id AND NOT d.resolved
                JOIN porter_jobs c ON c.id = d.child_id AND c.state || '' = 'pending'
            )
            SELECT id FROM reach)
          AND (SELECT n FROM locked) IS NOT NULL
          AND state IN ('available','scheduled','running','retryable','pending')
        ORDER BY id FOR UPDATE) r
)
UPDATE porter_jobs SET
    state        = CASE WHEN state = 'running' THEN state ELSE 'cancelled' END,
    finalized_at = CASE WHEN state = 'running' THEN finalized_at ELSE porter_now() END,
    metadata     = CASE WHEN state = 'running' AND (metadata ->> 'cancel_requested_at') IS NULL
                        -- Metadata another program wrote as no object (`||` would append the
                        -- request to an array, where no worker looks) is replaced by one.
                        THEN (CASE WHEN jsonb_typeof(metadata) = 'object' THEN metadata ELSE '{}' END)
                             || jsonb_build_object('cancel_requested_at',
                             to_char(porter_now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
                        ELSE metadata END
WHERE id IN (SELECT job_id FROM porter_workflow_steps WHERE workflow_id = $1)
  AND (SELECT n FROM rows) IS NOT NULL
  AND state IN ('available','scheduled','running','retryable','pending')
  -- A running job asked to stop already (as the SET above and the workers' look read it) is
  -- left out: nothing is asked again, and the answer counts it no more (a second cancel
  -- counted it as asked again).
  AND NOT (state = 'running' AND (metadata ->> 'cancel_requested_at') IS NOT NULL)
RETURNING id, queue, state, attempted_by
