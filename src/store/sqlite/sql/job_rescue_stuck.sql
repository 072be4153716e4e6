-- Metadata is read as CAST(metadata AS TEXT): a BLOB holding JSON text (another program's,
-- through an SQLite before 3.45) is otherwise read as binary JSON (review of 7 Dec).
-- Running jobs that started longer ago than their stuck limit (their kind's timeout plus
-- margin): the limit the claiming worker registered for the kind (porter_workers.stuck_after,
-- ms), or, for a job whose worker recorded none (a binary from before migration 0003), the
-- rescuer's limit for the kind (?1, a JSON array of [kind, ms]). A kind that neither knows is
-- never stuck. A registered limit that is not a number (another program's row) counts as
-- none, as on PostgreSQL (printf read `"abc"` as 0 ms: stuck at once).
-- Only jobs of live workers: a heartbeat within the worker's own lease, or within the
-- rescuer's (?3, '-15.000 seconds') for a registration without one, as job_rescue_lost.sql
-- judges. A lost worker's job is that pass's, however long ago it started: it uses no attempt
-- for the worker's loss, and waits while the rescuer judges nobody (its first lease after a
-- stall or a start). Taken here as stuck, the job of a worker that crashed longer ago than its
-- limit used an attempt, and on its last one was discarded, its children cancelled.
-- And only once the worker has been heard from since the limit passed (its heartbeat after
-- it): a worker cut off from the database still counts as live by its last heartbeat, but may
-- have finished the job and be retrying its completion (review of 7 Dec, on PostgreSQL: a
-- partition shorter than the lease). A job that runs on past its limit is taken at its
-- worker's next heartbeat, a third of a lease later.
-- Not the jobs of a worker just back from a stall (steady again, see worker_register.sql, since
-- less than 2.5 s ago, a third of its lease when shorter: a heartbeat more than half its lease
-- after the one before sets steady_since): its outcomes from the stall are still being retried,
-- and the first heartbeat can land before them (review of 7 Dec: a write lock held 95 s, and
-- the completions written after it were fenced off by the stuck pass in the same write). Not a
-- whole lease: a worker whose heartbeats all come late moves steady_since on with each, and its
-- stuck job was never taken (review of e060da0). (A registration without a lease has no
-- steady_since; 7,500 ms, a third of which is 2.5 s, only keeps the expression whole.)
-- Nor, for as long, after a heartbeat that said the worker still had outcomes failing
-- (outcomes_failing_at, migration 0056): it may be the first write through, before them, and
-- not late (review of 7 Dec).
-- A job running across its worker's last jump of the clock (clock_jumped_at, migration 0059: a
-- laptop's sleep, a VM paused) has the jump's length (clock_jumped_ms) taken off its time: its
-- own timeout counts on the monotonic clock, which the jump did not move. Review of 7 Dec: a
-- worker whose clock stepped on by two days had its running job taken 3 s later, an attempt
-- used. Only the last jump: a job across two has the earlier one counted as time it ran. Never
-- more than the job's time before the heartbeat that found the jump: one claimed between the
-- jump and that heartbeat was credited the whole jump (review of 1670d2a: a job claimed 1 s
-- after a night's sleep, blocking its thread, was taken 8 h after its limit).
-- A lease or stuck limit another program wrote past what a time can be moved by (9e18 ms, a
-- limit of 1e400) is read as 40,000,000,000,000 ms, about 1,268 years (porter takes leases and
-- timeouts up to 1,000 years): it failed every pass on PostgreSQL ("interval out of range").
UPDATE porter_jobs SET
    -- A job whose cancel a user requested is cancelled, not run again.
    state        = CASE WHEN json_extract(CAST(metadata AS TEXT), '$.cancel_requested_at') IS NOT NULL THEN 'cancelled'
                        WHEN attempt >= max_attempts THEN 'discarded' ELSE 'retryable' END,
    scheduled_at = porter_now(),
    finalized_at = CASE WHEN json_extract(CAST(metadata AS TEXT), '$.cancel_requested_at') IS NOT NULL OR attempt >= max_attempts
                        THEN porter_now() END,
    errors       = json_insert(CASE WHEN NOT json_valid(errors) THEN '[]' WHEN json_type(errors) = 'array' THEN errors ELSE '[]' END, '$[#]', json_object('attempt', attempt, 'at', porter_now(), 'error', 'job ran past its timeout'))
WHERE id IN (
    SELECT id FROM (
        SELECT j.id, w.heartbeat_at,
               CASE WHEN w.clock_jumped_at > j.attempted_at
                    THEN min(strftime('%Y-%m-%dT%H:%M:%fZ', j.attempted_at,
                                      printf('%+.3f seconds', max(min(coalesce(w.clock_jumped_ms, 0), 40000000000000), 0) / 1000.0)),
                             w.clock_jumped_at)
                    ELSE j.attempted_at END AS since,
               COALESCE(CASE WHEN json_valid(w.stuck_after)
                                  AND json_type(w.stuck_after, '$."' || j.kind || '"') IN ('integer', 'real')
                             THEN json_extract(w.stuck_after, '$."' || j.kind || '"') END,
                        (SELECT json_extract(l.value, '$[1]') FROM json_each(?1) l
                         WHERE json_extract(l.value, '$[0]') = j.kind)) AS limit_ms
        FROM porter_jobs j JOIN porter_workers w ON w.id = j.attempted_by
        WHERE j.state = 'running'
          -- Not a job of the asking worker (?4) whose outcome it is still writing at that
          -- attempt (?5, a JSON array of [id, attempt], see JobRescueParams::ending): its
          -- handler ended. An IN list that names no column of the row is built once, into an
          -- index; the EXISTS this replaced read the whole list again for each running job
          -- (review of b9f6275: 2.7 s a pass for 3,000 of each, on the one writer).
          AND NOT (coalesce(j.attempted_by = ?4, 0)
                   AND (j.id, j.attempt) IN (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]')
                                             FROM json_each(?5)))
          AND w.heartbeat_at >= strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(),
                                         CASE WHEN w.lease_ms IS NULL THEN ?3
                                              ELSE printf('%+.3f seconds', max(min(-w.lease_ms / 1000.0, 40000000000.0), -40000000000.0)) END)
          AND max(coalesce(w.steady_since, ''), coalesce(w.outcomes_failing_at, ''))
              <= strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(),
                          printf('%+.3f seconds', -min(max(coalesce(w.lease_ms, 7500), 0) / 3000.0, 2.5)))
    )
    -- printf would read a NULL limit as 0: skip those first.
    WHERE limit_ms IS NOT NULL
      AND since < strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(), printf('%+.3f seconds', -max(min(limit_ms, 40000000000000), 0) / 1000.0))
      AND since < strftime('%Y-%m-%dT%H:%M:%fZ', heartbeat_at, printf('%+.3f seconds', -max(min(limit_ms, 40000000000000), 0) / 1000.0))
    LIMIT ?2
)
RETURNING state, queue, kind
