-- Fenced. A running job its own worker gives back (stopped by a shutdown, or found by the
-- worker's reconcile) is due again at once without using up an attempt: as in job_snooze, the
-- attempt counter stays (fences stay unique) and max_attempts grows by one. $4 is the reason,
-- kept in the error history; $5 whether the job may have started: when not (claimed ahead and
-- given back before its handler ran), its entry says `"unstarted": true`, by which a parent
-- retried later knows the child has not started and is waited for again (migration 0044). A
-- job whose cancel a user requested ends cancelled instead: the stop it asked for has happened,
-- and its entry says so ($6, "cancelled by user", then the give-back's reason in brackets:
-- until 8 Dec it gave the reason alone, and nothing showed that a user had cancelled the job).
-- Differs from SQLite (one writer): the job's sequence lock (job_sequence_lock.sql) is taken
-- before its row, the order every path takes them in, so that this and an insert or a
-- finalize of other jobs of the sequence cannot deadlock.
WITH locked AS MATERIALIZED (
    SELECT count(pg_advisory_xact_lock(1886350450, hashtext(sequence_key))) AS n
    FROM porter_jobs WHERE id = $1 AND sequence_key IS NOT NULL
)
UPDATE porter_jobs SET
    state        = CASE WHEN (metadata ->> 'cancel_requested_at') IS NOT NULL THEN 'cancelled' ELSE 'available' END,
    scheduled_at = CASE WHEN (metadata ->> 'cancel_requested_at') IS NOT NULL THEN scheduled_at ELSE porter_now() END,
    finalized_at = CASE WHEN (metadata ->> 'cancel_requested_at') IS NOT NULL THEN porter_now() END,
    max_attempts = CASE WHEN (metadata ->> 'cancel_requested_at') IS NOT NULL THEN max_attempts ELSE max_attempts + 1 END,
    errors       = errors || jsonb_build_array(jsonb_build_object('attempt', attempt, 'at', porter_now(), 'error',
                                           CASE WHEN (metadata ->> 'cancel_requested_at') IS NOT NULL THEN $6::text || ' (' || $4::text || ')'
                                                ELSE $4::text END)
                                       || CASE WHEN $5::boolean THEN '{}'::jsonb ELSE '{"unstarted": true}'::jsonb END)
-- By primary key only (see job_complete.sql on `COLLATE "C"`).
WHERE id = $1 AND (SELECT n FROM locked) IS NOT NULL AND state COLLATE "C" = 'running' AND attempt = $2 AND attempted_by = $3
RETURNING *
