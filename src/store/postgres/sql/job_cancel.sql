-- A user cancels an unfinished job. One that is not running is cancelled at once. A running
-- one only records the request (metadata cancel_requested_at, River's way) and stays
-- 'running', so that its unique key stays held until its worker has stopped it; the worker
-- learns of it through NOTIFY porter_cancel (sent by the caller in this transaction) and then
-- writes 'cancelled' itself (fenced). Asking twice keeps the first request's time.
-- The time is text in SQLite's format, so the metadata reads the same on both backends.
-- Differs from SQLite (one writer): the job's sequence lock (job_sequence_lock.sql) is taken
-- before its row, the order every path takes them in, so that this and an insert or a
-- finalize of other jobs of the sequence cannot deadlock. Then its row and the waiting jobs
-- below it, in id order, as a bulk cancel takes its rows (see job_cancel_many.sql): taken as
-- the trigger came to them, they deadlocked with a bulk cancel of two of their other parents.
WITH locked AS MATERIALIZED (
    SELECT count(pg_advisory_xact_lock(1886350450, hashtext(sequence_key))) AS n
    FROM porter_jobs WHERE id = $1 AND sequence_key IS NOT NULL
),
rows AS MATERIALIZED (
    SELECT count(*) AS n FROM (
        SELECT id FROM porter_jobs
        WHERE id IN (
            WITH RECURSIVE reach(id) AS (
                SELECT $1::bigint
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
WHERE id = $1 AND (SELECT n FROM rows) IS NOT NULL AND state IN ('available','scheduled','running','retryable','pending')
RETURNING *
