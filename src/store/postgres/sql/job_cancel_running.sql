-- Fenced: a running job cancels itself, keeping the reason in its history.
-- Differs from SQLite (one writer): the job's sequence lock (job_sequence_lock.sql) is taken
-- before its row, the order every path takes them in, so that this and an insert or a
-- finalize of other jobs of the sequence cannot deadlock.
WITH locked AS MATERIALIZED (
    SELECT count(pg_advisory_xact_lock(1886350450, hashtext(sequence_key))) AS n
    FROM porter_jobs WHERE id = $1 AND sequence_key IS NOT NULL
)
UPDATE porter_jobs SET
    state = 'cancelled',
    finalized_at = porter_now(),
    -- $5: whether its handler ran; a job cancelled while it waited for a slot did not, and its
    -- entry says so, as a give-back's (job_release.sql).
    errors = errors || jsonb_build_array(jsonb_build_object('attempt', attempt, 'at', porter_now(), 'error', $4::text)
                                         || CASE WHEN $5::boolean THEN '{}'::jsonb ELSE '{"unstarted": true}'::jsonb END)
-- By primary key only (see job_complete.sql on `COLLATE "C"`).
WHERE id = $1 AND (SELECT n FROM locked) IS NOT NULL AND state COLLATE "C" = 'running' AND attempt = $2 AND attempted_by = $3
RETURNING *
