-- Running jobs whose worker has not heartbeated within its own lease (lease_ms, as it
-- registered it), or within the rescuer's lease ($1 seconds) for a registration without one
-- (a binary from before migration 0003).
-- Differs from SQLite (inside its one writer): rescuers of several processes may run at once,
-- and rows another one holds are skipped rather than waited for.
-- A worker lost by a crash, a kill or a partition does not use up its job's attempt (as for a
-- shutdown, max_attempts grows by one) for the job's first two such losses; from the third
-- on it counts, so a job that kills its worker every time still ends discarded. The count
-- is of this statement's own entries already in its history, marked `"lost": true`, not of
-- every entry reading "worker lost" (a job's own failure may say so: review of 6 Dec; entries
-- written before the mark are not counted, so a job lost then has up to two more losses
-- forgiven).
-- Differs from SQLite (one writer): the sequence locks of the jobs it may rescue first, in
-- the order of their numbers (see job_complete.sql), before any row is locked (the gate below is evaluated
-- before the first row passes).
-- A rescue by a worker ($3) judges nobody unless that worker's own heartbeat was recorded
-- within half its lease and has been steady for a whole lease (see migration 0024): after a
-- stall of its own (stopped, or the database taking no heartbeat from anyone), every
-- heartbeat looks old until each worker's held-up one is through, and live workers would be
-- judged lost.
-- The jobs are found through their workers: first each worker that has running jobs (one
-- step of the index of running jobs per worker, newest entry first), then the running jobs of
-- the workers judged lost. Asking every running row whether its worker lives read every entry
-- of that index, and a transaction held open elsewhere keeps an entry for every job claimed
-- since it began (24 million rows in ten minutes at 20,000 jobs/s: the pass went from 1 s to
-- 6 s). A worker's newest entries are of the jobs it runs now, so its step stops at once
-- while it runs any; a worker that runs nothing at that moment (idle between bursts, or
-- stopped while the snapshot holds) is walked whole, so the pass still grows with the held
-- snapshot, more slowly (2.4 s against 5.4 s at minute 10 of the same run). Running jobs
-- claimed by nobody (attempted_by NULL, a plain INSERT's) are judged lost as before.
-- A lease or stuck limit another program wrote past what a time can be moved by (9e18 ms, a
-- limit of 1e400) is read as 40,000,000,000,000 ms, about 1,268 years (porter takes leases and
-- timeouts up to 1,000 years): it failed every pass on PostgreSQL ("interval out of range").
WITH RECURSIVE judging AS MATERIALIZED (
    SELECT $3::text IS NULL OR EXISTS (
        SELECT 1 FROM porter_workers me
        WHERE me.id = $3
          AND (me.lease_ms IS NULL
               OR (me.heartbeat_at >= porter_now() - least(greatest(me.lease_ms, -40000000000000), 40000000000000) / 2.0 * interval '1 millisecond'
                   AND coalesce(me.steady_since, me.started_at) <= porter_now() - least(greatest(me.lease_ms, -40000000000000), 40000000000000) * interval '1 millisecond'))) AS ok
),
running_by(id) AS (
    (SELECT attempted_by FROM porter_jobs
     WHERE state = 'running' AND attempted_by IS NOT NULL AND (SELECT ok FROM judging)
     ORDER BY attempted_by DESC, attempted_at DESC LIMIT 1)
    UNION ALL
    SELECT (SELECT j.attempted_by FROM porter_jobs j
            WHERE j.state = 'running' AND j.attempted_by < r.id
            ORDER BY j.attempted_by DESC, j.attempted_at DESC LIMIT 1)
    FROM running_by r WHERE r.id IS NOT NULL
),
lost AS MATERIALIZED (
    SELECT r.id FROM running_by r
    WHERE r.id IS NOT NULL
      AND NOT EXISTS (
          SELECT 1 FROM porter_workers w
          WHERE w.id = r.id
            AND w.heartbeat_at >= porter_now() - COALESCE(CASE WHEN w.lease_ms > 40000000000000 THEN 40000000000000 WHEN w.lease_ms < -40000000000000 THEN -40000000000000 ELSE w.lease_ms END / 1000.0, $1::float8) * interval '1 second')
      -- A rescuer's gate above sees stalls of its own lease's measure only: a rescuer with a
      -- long lease heartbeats too seldom to see a stall shorter than half its lease, which
      -- may be longer than a short-lease worker's whole lease (review of 7 Dec: a 60 s
      -- rescuer judged a live 15 s worker lost after a 20 s stall). So a worker of a shorter
      -- lease than the rescuer's is judged once silent for the rescuer's lease too, or once a
      -- worker whose lease is no longer than the judged one's vouches for the time: its
      -- heartbeat fresh (within half its lease) and steady for the judged worker's lease.
      AND ($3::text IS NULL
           OR NOT EXISTS (
               SELECT 1 FROM porter_workers w
               WHERE w.id = r.id AND w.heartbeat_at >= porter_now() - $1::float8 * interval '1 second')
           OR EXISTS (
               SELECT 1 FROM porter_workers w, porter_workers x
               WHERE w.id = r.id AND w.lease_ms IS NOT NULL AND x.lease_ms IS NOT NULL
                 AND x.lease_ms <= w.lease_ms
                 AND x.heartbeat_at >= porter_now() - least(greatest(x.lease_ms, -40000000000000), 40000000000000) / 2.0 * interval '1 millisecond'
                 AND coalesce(x.steady_since, x.started_at) <= porter_now() - least(greatest(w.lease_ms, -40000000000000), 40000000000000) * interval '1 millisecond'))
),
judged AS MATERIALIZED (
    SELECT id, sequence_key, attempt, attempted_at, attempted_by FROM porter_jobs
    WHERE state = 'running' AND attempted_by = ANY(ARRAY(SELECT id FROM lost))
    UNION ALL
    SELECT id, sequence_key, attempt, attempted_at, attempted_by FROM porter_jobs
    WHERE state = 'running' AND attempted_by IS NULL AND (SELECT ok FROM judging)
),
locked AS MATERIALIZED (
    SELECT count(pg_advisory_xact_lock(1886350450, h)) AS n
    FROM (SELECT DISTINCT hashtext(sequence_key) AS h FROM judged
          WHERE sequence_key IS NOT NULL
          ORDER BY 1) keys
)
UPDATE porter_jobs SET
    -- A job whose cancel a user requested is cancelled, not run again.
    state        = CASE WHEN (metadata ->> 'cancel_requested_at') IS NOT NULL THEN 'cancelled'
                        WHEN attempt >= max_attempts AND (SELECT count(*) FROM jsonb_array_elements(errors) e
                             WHERE e->'lost' = 'true'::jsonb) >= 2 THEN 'discarded'
                        ELSE 'retryable' END,
    max_attempts = max_attempts + CASE WHEN (SELECT count(*) FROM jsonb_array_elements(errors) e
                        WHERE e->'lost' = 'true'::jsonb) < 2 THEN 1 ELSE 0 END,
    scheduled_at = porter_now(),
    finalized_at = CASE WHEN (metadata ->> 'cancel_requested_at') IS NOT NULL
                          OR (attempt >= max_attempts AND (SELECT count(*) FROM jsonb_array_elements(errors) e
                              WHERE e->'lost' = 'true'::jsonb) >= 2)
                        THEN porter_now() END,
    errors       = errors || jsonb_build_array(jsonb_build_object('attempt', attempt, 'at', porter_now(), 'error', 'worker lost', 'lost', true))
-- The judged jobs by primary key: `state COLLATE "C"` (the same test) so that the planner
-- cannot walk porter_jobs_running instead, filtering for the ids (see job_complete.sql).
-- Only the run judged: the lock's recheck of a row that changed after the snapshot (while
-- this waited for the sequence locks, say) reads its newest version, and a job of the lost
-- worker that ended meanwhile and was claimed again, by a live worker or by the lost one
-- back from a stall (its heartbeat newer than this snapshot), is another run (reviews of
-- 6 Dec). A claim writes a new attempt and start.
WHERE id IN (
    SELECT id FROM porter_jobs
    WHERE id = ANY(ARRAY(SELECT id FROM judged)) AND state COLLATE "C" = 'running'
      AND EXISTS (SELECT 1 FROM judged j
                  WHERE j.id = porter_jobs.id AND j.attempt = porter_jobs.attempt
                    AND j.attempted_at IS NOT DISTINCT FROM porter_jobs.attempted_at
                    AND j.attempted_by IS NOT DISTINCT FROM porter_jobs.attempted_by)
      AND (SELECT n FROM locked) IS NOT NULL
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
RETURNING state, queue, kind
