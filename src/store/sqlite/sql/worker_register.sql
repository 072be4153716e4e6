-- ?4 the worker's own lease in milliseconds, ?5 its stuck limits (JSON object: kind -> ms),
-- ?6 and ?7 the queues and kinds it serves (JSON arrays of names), ?8 whether it still has
-- outcomes it could not write (outcomes_failing_at, migration 0056: stuck passes leave its jobs
-- alone a moment), ?9 the worker's monotonic time since its previous heartbeat in milliseconds
-- (NULL for none) and ?10 a margin: a heartbeat later than both after the one before by the
-- database's clock finds that clock jumped ahead, and records when and by how much more than
-- the worker's own clock it moved (migration 0059).
INSERT INTO porter_workers (id, host, pid, started_at, heartbeat_at, lease_ms, stuck_after, queues, kinds, outcomes_failing_at)
VALUES (?1, ?2, ?3, porter_now(), porter_now(), ?4, ?5, ?6, ?7, CASE WHEN ?8 THEN porter_now() END)
ON CONFLICT (id) DO UPDATE SET
    heartbeat_at = porter_now(),
    -- A heartbeat more than half the lease after the one before it (column names here read
    -- the row before this update) makes the worker steady again only from now (see
    -- migration 0024; rescues by this worker judge nobody until a lease later).
    steady_since = CASE WHEN heartbeat_at < strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(),
                                                     printf('%+.3f seconds', -excluded.lease_ms / 2000.0))
                        THEN porter_now() ELSE steady_since END,
    outcomes_failing_at = CASE WHEN ?8 THEN porter_now() ELSE outcomes_failing_at END,
    -- Later than the worker's own clock allows: the database's clock jumped ahead meanwhile.
    clock_jumped_at = CASE WHEN ?9 IS NOT NULL
                                AND heartbeat_at < strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(),
                                                            printf('%+.3f seconds', -(?9 + ?10) / 1000.0))
                           THEN porter_now() ELSE clock_jumped_at END,
    clock_jumped_ms = CASE WHEN ?9 IS NOT NULL
                                AND heartbeat_at < strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(),
                                                            printf('%+.3f seconds', -(?9 + ?10) / 1000.0))
                           THEN CAST(round((julianday(porter_now()) - julianday(heartbeat_at)) * 86400000.0) AS INTEGER) - ?9
                           ELSE clock_jumped_ms END,
    lease_ms     = excluded.lease_ms,
    stuck_after  = excluded.stuck_after,
    queues       = excluded.queues,
    kinds        = excluded.kinds
