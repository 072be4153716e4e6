-- Fenced: only the running attempt of the worker that claimed it can complete it.
-- Differs from SQLite (one row per statement inside its one write transaction): a whole batch
-- of fences in one statement, one round trip. Returns the fences that matched.
-- The arrays are read through sub-selects so that no plan sees how many fences there are: a
-- custom plan (the first runs of each connection, with the arrays known) weighed a scan of the
-- whole table against one primary-key lookup per fence, and with statistics taken while no job
-- ran (autovacuum's ANALYZE after an insert) the test of `state` below made it expect the
-- batch's jobs to be 1 row of the table: it scanned the table in a nested loop over the fences,
-- comparing each running job to every fence (a batch of 574 of 20,000 jobs took 160 ms, where
-- it takes 12; porter bench at 1000 slots drained 6-7k jobs/s instead of 21-26k). Every plan is
-- now planned as the generic one was, for a few fences: a primary-key lookup per fence, on a
-- table of more than a few thousand jobs. On a smaller one the scan still looks cheaper, and a
-- batch of ~1000 fences of a table of ~1,200 jobs with such statistics still takes that loop
-- (160-250 ms, measured in review); the generic plan took it before this change as well.
WITH fences AS (
    SELECT * FROM unnest((SELECT $1::bigint[]), (SELECT $2::int[]), (SELECT $3::text[])) AS f(id, attempt, worker_id)
),
-- Differs from SQLite (one writer): the batch's sequence locks (job_sequence_lock.sql) are
-- taken first, in the order of the locks' numbers (hashtext of the key, as everywhere), before
-- any row: the trigger that promotes a sequence's next job takes them again (already held), so
-- completing jobs of several sequences cannot deadlock with an insert or another batch taking
-- them in another order. Not in the keys' order: two keys may share a number (one pair in
-- about 100,000 keys does), and then two transactions each holding one key's lock could each
-- wait for the other's. Jobs without a sequence cost one primary-key lookup each here.
locked AS MATERIALIZED (
    SELECT count(pg_advisory_xact_lock(1886350450, h)) AS n
    FROM (SELECT DISTINCT hashtext(j.sequence_key) AS h FROM porter_jobs j JOIN fences f ON j.id = f.id
          WHERE j.sequence_key IS NOT NULL ORDER BY 1) keys
)
-- The worker is compared with IS NOT DISTINCT FROM (the same here: both sides are set) because
-- it cannot drive an index: with `=`, generic plans looked each fence up through
-- porter_jobs_running by worker, a walk over every job the worker runs, per fence (a batch of
-- 500 took 30 ms where it takes 5 by primary key).
-- `state COLLATE "C" = 'running'` (the same test: equality does not depend on collation) so
-- that no partial index on `state = 'running'` can serve this statement either: when the
-- statistics said no job runs (an ANALYZE at an idle moment), the planner took
-- porter_jobs_running for empty and walked it whole, filtering for the fences, rather than look
-- them up by primary key; with a snapshot held open elsewhere that walk read every running entry
-- since, per batch. The fenced writes of one job (job_fail.sql, job_release.sql,
-- job_snooze.sql, job_output_record.sql, job_cancel_running.sql) test it the same way.
UPDATE porter_jobs j SET state = 'completed', finalized_at = porter_now()
FROM fences f
WHERE j.id = f.id AND (SELECT n FROM locked) IS NOT NULL AND j.state COLLATE "C" = 'running' AND j.attempt = f.attempt AND j.attempted_by IS NOT DISTINCT FROM f.worker_id
-- The fourth column: whether the job's end may make others available (see cursor.rs).
RETURNING j.id, j.attempt, j.attempted_by,
    j.has_dependents OR j.sequence_key IS NOT NULL OR j.batch_id IS NOT NULL
