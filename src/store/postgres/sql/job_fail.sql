-- Fenced. $4 error, $5 trace or NULL, $6 retry delay in seconds, $7 discard now.
-- A failure of a job whose cancel a user requested ends it cancelled instead of retryable
-- (River's rule); a final failure stays discarded.
-- Unlike SQLite's json_object, a NULL trace is left out of the entry (jsonb_strip_nulls); both
-- read back as no trace.
-- Differs from SQLite (one writer): the job's sequence lock (job_sequence_lock.sql) is taken
-- before its row, the order every path takes them in, so that this and an insert or a
-- finalize of other jobs of the sequence cannot deadlock.
WITH locked AS MATERIALIZED (
    SELECT count(pg_advisory_xact_lock(1886350450, hashtext(sequence_key))) AS n
    FROM porter_jobs WHERE id = $1 AND sequence_key IS NOT NULL
)
UPDATE porter_jobs SET
    state        = CASE WHEN $7 OR attempt >= max_attempts THEN 'discarded'
                        WHEN (metadata ->> 'cancel_requested_at') IS NOT NULL THEN 'cancelled' ELSE 'retryable' END,
    scheduled_at = CASE WHEN $7 OR attempt >= max_attempts OR (metadata ->> 'cancel_requested_at') IS NOT NULL THEN scheduled_at
                        ELSE porter_now() + $6::float8 * interval '1 second' END,
    finalized_at = CASE WHEN $7 OR attempt >= max_attempts OR (metadata ->> 'cancel_requested_at') IS NOT NULL THEN porter_now() END,
    errors       = errors || jsonb_build_array(jsonb_strip_nulls(
                       jsonb_build_object('attempt', attempt, 'at', porter_now(), 'error', $4::text, 'trace', $5::text)))
-- By primary key only (see job_complete.sql on `COLLATE "C"`).
WHERE id = $1 AND (SELECT n FROM locked) IS NOT NULL AND state COLLATE "C" = 'running' AND attempt = $2 AND attempted_by = $3
RETURNING *
