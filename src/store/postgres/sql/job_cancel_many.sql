-- A bulk cancel: job_cancel.sql for every listed job ($1). A running job only records the
-- request and stays 'running'; its worker is told by NOTIFY porter_cancel (sent by the caller
-- in this transaction, job_cancel_notify.sql) and stops it (fenced), as for a single cancel.
-- Differs from SQLite (one writer): the sequence locks of the batch first, in the order of
-- their numbers (see job_complete.sql).
WITH locked AS MATERIALIZED (
    SELECT count(pg_advisory_xact_lock(1886350450, h)) AS n
    FROM (SELECT DISTINCT hashtext(sequence_key) AS h FROM porter_jobs
          WHERE id = ANY($1::bigint[]) AND sequence_key IS NOT NULL ORDER BY 1) keys
),
-- Then the rows, in id order, as a completion batch and a bulk delete lock theirs: the
-- update's own scan may meet them in any order (a bitmap or sequential scan goes by where
-- they lie in the table), and a completion of two of them met in the other order deadlocked.
-- With them, in the same order, the waiting jobs below them (the cancel's trigger cancels or
-- promotes those after the listed rows, whatever their ids): a single cancel of another parent
-- of two of those, taking them as its own trigger came to them, deadlocked with the bulk in
-- about one round of three (review of 3 Dec).
rows AS MATERIALIZED (
    SELECT count(*) AS n FROM (
        SELECT id FROM porter_jobs
        WHERE id IN (
            WITH RECURSIVE reach(id) AS (
                SELECT unnest($1::bigint[])
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
WHERE id = ANY($1::bigint[]) AND (SELECT n FROM rows) IS NOT NULL
  AND state IN ('available','scheduled','running','retryable','pending')
  -- $2: the bulk's filter of states (empty for any), judged again on the row this updates.
  AND (cardinality($2::text[]) = 0 OR state = ANY($2::text[]))
  -- A running job asked to stop already (as the SET above and the workers' look read it) is
  -- left out: nothing is asked again, and the answer counts it no more (a second cancel
  -- counted it as asked again).
  AND NOT (state = 'running' AND (metadata ->> 'cancel_requested_at') IS NOT NULL)
RETURNING id, queue, state, attempted_by
