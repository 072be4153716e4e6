-- Fenced. The attempt counter stays (fences stay unique); max_attempts grows by one instead,
-- so a snooze uses up no attempt (River's way). $4 is the delay in seconds.
-- A job whose cancel a user requested ends cancelled instead (River's rule), with the history
-- entry $5 (as a run stopped by the request has) saying why it ended.
-- Differs from SQLite (one writer): the job's sequence lock first, before its row, as in
-- job_fail.sql. A cancelled job's end promotes its sequence's next one under that lock
-- (porter_job_finalized); taken there, after the row, it met a bulk cancel holding the lock
-- and waiting for the row, and PostgreSQL aborted one of the two as a deadlock.
WITH locked AS MATERIALIZED (
    SELECT count(pg_advisory_xact_lock(1886350450, hashtext(sequence_key))) AS n
    FROM porter_jobs WHERE id = $1 AND sequence_key IS NOT NULL
)
UPDATE porter_jobs SET
    state        = CASE WHEN (metadata ->> 'cancel_requested_at') IS NOT NULL THEN 'cancelled' ELSE 'scheduled' END,
    scheduled_at = CASE WHEN (metadata ->> 'cancel_requested_at') IS NOT NULL THEN scheduled_at
                        ELSE porter_now() + $4::float8 * interval '1 second' END,
    finalized_at = CASE WHEN (metadata ->> 'cancel_requested_at') IS NOT NULL THEN porter_now() END,
    max_attempts = CASE WHEN (metadata ->> 'cancel_requested_at') IS NOT NULL THEN max_attempts ELSE max_attempts + 1 END,
    errors       = CASE WHEN (metadata ->> 'cancel_requested_at') IS NOT NULL
                        THEN errors || jsonb_build_array(jsonb_build_object('attempt', attempt, 'at', porter_now(), 'error', $5::text))
                        ELSE errors END
-- By primary key only (see job_complete.sql on `COLLATE "C"`).
WHERE id = $1 AND (SELECT n FROM locked) IS NOT NULL AND state COLLATE "C" = 'running' AND attempt = $2 AND attempted_by = $3
RETURNING *
