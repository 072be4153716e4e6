-- Cancels every unfinished job of workflow $1, as job_cancel.sql does each (a running one only
-- records the request; its worker is told by NOTIFY porter_cancel, sent by the caller in this
-- transaction). One statement, unlike SQLite (see its workflow_unfinished.sql): PostgreSQL
-- runs AFTER ROW triggers at the end of the statement, when every step is already final, so
-- the porter_jobs_finalized trigger promotes or cancels nothing.
UPDATE porter_jobs SET
    state        = CASE WHEN state = 'running' THEN state ELSE 'cancelled' END,
    finalized_at = CASE WHEN state = 'running' THEN finalized_at ELSE porter_now() END,
    metadata     = CASE WHEN state = 'running' AND NOT metadata ? 'cancel_requested_at'
                        THEN metadata || jsonb_build_object('cancel_requested_at',
                             to_char(porter_now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
                        ELSE metadata END
WHERE id IN (SELECT job_id FROM porter_workflow_steps WHERE workflow_id = $1)
  AND state IN ('available','scheduled','running','retryable','pending')
RETURNING id, queue, state, attempted_by
