-- The parents of jobs being inserted, marked as having dependents (so that their end runs the
-- porter_jobs_finalized trigger), with their states. Differs from SQLite: the update locks
-- each parent's row (in id order, so two inserts never deadlock) until this transaction ends,
-- so a parent's finalize either commits before (and this reads its end) or waits for the child
-- and its edges to commit (and the trigger then counts them). Its RETURNING reads the newest
-- version of a row it waited for. A producer's claim (and its promotion of due jobs) passes
-- over a parent this holds (SKIP LOCKED) and finds nothing: the caller wakes the queues of the
-- ones that are available, or scheduled or retryable and due (the fourth column), at its commit.
-- Differs from SQLite (one writer): first the sequence locks of the parents that are jobs of a
-- sequence and of the sequences $2 (the keys of the jobs being inserted), together, in the
-- order of their numbers (see job_complete.sql), then the rows. A parent waiting in its
-- sequence is the row the finalize of the sequence's active job locks next, under the
-- sequence's lock (porter_job_finalized): locked here without that lock, while this waited for
-- another parent's row that the finalizing transaction held, the two waited for each other.
WITH locked AS MATERIALIZED (
    SELECT count(pg_advisory_xact_lock(1886350450, h)) AS n
    FROM (SELECT DISTINCT hashtext(k) AS h
          FROM (SELECT sequence_key AS k FROM porter_jobs
                WHERE id = ANY($1::bigint[]) AND sequence_key IS NOT NULL
                UNION ALL SELECT unnest($2::text[])) ks
          ORDER BY 1) keys
),
p AS (SELECT id FROM porter_jobs WHERE id = ANY($1::bigint[]) AND (SELECT n FROM locked) IS NOT NULL
      ORDER BY id FOR UPDATE)
UPDATE porter_jobs j SET has_dependents = true FROM p WHERE j.id = p.id
RETURNING j.id, j.state, j.queue,
    j.state = 'available' OR (j.state IN ('scheduled', 'retryable') AND j.scheduled_at <= porter_now())
