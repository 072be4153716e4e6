-- Running jobs that started longer ago than their stuck limit (their kind's timeout plus
-- margin): the limit the claiming worker registered for the kind (porter_workers.stuck_after,
-- ms), or, for a job whose worker recorded none (a binary from before migration 0003), the
-- rescuer's limit for the kind ($1 kinds, $2 ms). A kind that neither knows is never stuck.
-- A registered limit that is not a number (another program's row) counts as none: its cast
-- failed every pass, for every worker's jobs.
-- Only jobs of live workers: a heartbeat within the worker's own lease, or within the
-- rescuer's ($4, seconds) for a registration without one, as job_rescue_lost.sql judges. A
-- lost worker's job is that pass's, however long ago it started: it uses no attempt for the
-- worker's loss, and waits while the rescuer judges nobody (its first lease after a stall or a
-- start). Taken here as stuck, the job of a worker that crashed longer ago than its limit used
-- an attempt, and on its last one was discarded, its children cancelled.
-- And only once the worker has been heard from since the limit passed (least(now, heartbeat)):
-- a worker cut off from the database still counts as live by its last heartbeat, but may have
-- finished the job and be retrying its completion (review of 7 Dec: a 113 s partition of a
-- worker with a 600 s lease, and other workers took two completed jobs for stuck). A job that
-- runs on past its limit is taken at its worker's next heartbeat, a third of a lease later.
-- Not the jobs of a worker just back from a stall (steady again, see worker_register.sql, since
-- less than 2.5 s ago, a third of its lease when shorter: a heartbeat more than half its lease
-- after the one before sets steady_since): its outcomes from the stall are still being retried,
-- and the first heartbeat can land before them (review of 7 Dec: after a 90 s outage a
-- completion landed 0.2-1.2 s after its job was taken for stuck, and the job ran twice). They
-- land within the retries' 2 s backoff. Not a whole lease: a worker whose heartbeats all come
-- late moves steady_since on with each, and its stuck job was never taken (review of e060da0).
-- Nor, for as long, after a heartbeat that said the worker still had outcomes failing
-- (outcomes_failing_at, migration 0056): after an outage it may be the first write through,
-- before them, and not late (review of 7 Dec: a partition shorter than half the lease).
-- A job running across its worker's last jump of the clock (clock_jumped_at, migration 0059: a
-- laptop's sleep, a VM paused) has the jump's length (clock_jumped_ms) taken off its time: its
-- own timeout counts on the monotonic clock, which the jump did not move. Review of 7 Dec: a
-- worker whose clock stepped on by two days had its running job taken 3 s later, an attempt
-- used. Only the last jump: a job across two has the earlier one counted as time it ran. Never
-- more than the job's time before the heartbeat that found the jump: one claimed between the
-- jump and that heartbeat was credited the whole jump (review of 1670d2a: a job claimed 1 s
-- after a night's sleep, blocking its thread, was taken 8 h after its limit).
-- SKIP LOCKED for the same reason as job_rescue_lost.sql; only the jobs' rows are locked.
-- Differs from SQLite (one writer): the sequence locks of the jobs it may rescue first, in
-- the order of their numbers (see job_complete.sql), before any row is locked.
-- A lease or stuck limit another program wrote past what a time can be moved by (9e18 ms, a
-- limit of 1e400) is read as 40,000,000,000,000 ms, about 1,268 years (porter takes leases and
-- timeouts up to 1,000 years): it failed every pass on PostgreSQL ("interval out of range").
WITH locked AS MATERIALIZED (
    SELECT count(pg_advisory_xact_lock(1886350450, h)) AS n
    FROM (SELECT DISTINCT hashtext(j.sequence_key) AS h FROM porter_jobs j
          JOIN porter_workers w ON w.id = j.attempted_by
          WHERE j.state = 'running' AND j.sequence_key IS NOT NULL
            AND w.heartbeat_at >= porter_now() - COALESCE(CASE WHEN w.lease_ms > 40000000000000 THEN 40000000000000 WHEN w.lease_ms < -40000000000000 THEN -40000000000000 ELSE w.lease_ms END / 1000.0, $4::float8) * interval '1 second'
            AND (greatest(w.steady_since, w.outcomes_failing_at) IS NULL OR greatest(w.steady_since, w.outcomes_failing_at) <= porter_now() - least(COALESCE(CASE WHEN w.lease_ms > 40000000000000 THEN 40000000000000 WHEN w.lease_ms < -40000000000000 THEN -40000000000000 ELSE w.lease_ms END / 1000.0, $4::float8) / 3.0, 2.5) * interval '1 second')
            AND CASE WHEN w.clock_jumped_at > j.attempted_at THEN least(j.attempted_at + greatest(least(w.clock_jumped_ms, 40000000000000), 0) * interval '1 millisecond', w.clock_jumped_at) ELSE j.attempted_at END < least(porter_now(), w.heartbeat_at) - COALESCE(
                    CASE WHEN jsonb_typeof(w.stuck_after -> j.kind) = 'number' THEN greatest(least((w.stuck_after -> j.kind)::numeric, 40000000000000), 0)::float8 END,
                    (SELECT l.ms FROM unnest($1::text[], $2::float8[]) AS l(kind, ms) WHERE l.kind = j.kind)
                ) / 1000 * interval '1 second'
            AND NOT (coalesce(j.attempted_by = $5, false)
                     AND (j.id, j.attempt) IN (SELECT * FROM unnest($6::bigint[], $7::int[])))
          ORDER BY 1) keys
)
UPDATE porter_jobs SET
    -- A job whose cancel a user requested is cancelled, not run again.
    state        = CASE WHEN (metadata ->> 'cancel_requested_at') IS NOT NULL THEN 'cancelled'
                        WHEN attempt >= max_attempts THEN 'discarded' ELSE 'retryable' END,
    scheduled_at = porter_now(),
    finalized_at = CASE WHEN (metadata ->> 'cancel_requested_at') IS NOT NULL OR attempt >= max_attempts THEN porter_now() END,
    errors       = errors || jsonb_build_array(jsonb_build_object('attempt', attempt, 'at', porter_now(), 'error', 'job ran past its timeout'))
WHERE id IN (
    SELECT j.id FROM porter_jobs j JOIN porter_workers w ON w.id = j.attempted_by
    WHERE j.state = 'running' AND (SELECT n FROM locked) IS NOT NULL
      AND w.heartbeat_at >= porter_now() - COALESCE(CASE WHEN w.lease_ms > 40000000000000 THEN 40000000000000 WHEN w.lease_ms < -40000000000000 THEN -40000000000000 ELSE w.lease_ms END / 1000.0, $4::float8) * interval '1 second'
      AND (greatest(w.steady_since, w.outcomes_failing_at) IS NULL OR greatest(w.steady_since, w.outcomes_failing_at) <= porter_now() - least(COALESCE(CASE WHEN w.lease_ms > 40000000000000 THEN 40000000000000 WHEN w.lease_ms < -40000000000000 THEN -40000000000000 ELSE w.lease_ms END / 1000.0, $4::float8) / 3.0, 2.5) * interval '1 second')
      AND CASE WHEN w.clock_jumped_at > j.attempted_at THEN least(j.attempted_at + greatest(least(w.clock_jumped_ms, 40000000000000), 0) * interval '1 millisecond', w.clock_jumped_at) ELSE j.attempted_at END < least(porter_now(), w.heartbeat_at) - COALESCE(
              CASE WHEN jsonb_typeof(w.stuck_after -> j.kind) = 'number' THEN greatest(least((w.stuck_after -> j.kind)::numeric, 40000000000000), 0)::float8 END,
              (SELECT l.ms FROM unnest($1::text[], $2::float8[]) AS l(kind, ms) WHERE l.kind = j.kind)
          ) / 1000 * interval '1 second'
      -- Not a job of the asking worker ($5) whose outcome it is still writing at that attempt
      -- ($6 ids, $7 attempts, see JobRescueParams::ending): its handler ended.
      AND NOT (coalesce(j.attempted_by = $5, false)
               AND (j.id, j.attempt) IN (SELECT * FROM unnest($6::bigint[], $7::int[])))
    LIMIT $3
    FOR UPDATE OF j SKIP LOCKED
)
RETURNING state, queue, kind
