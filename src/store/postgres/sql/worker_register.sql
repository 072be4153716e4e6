-- $4 the worker's own lease in milliseconds, $5 its stuck limits (kind -> ms), $6 and $7 the
-- queues and kinds it serves (JSON arrays of names), $8 whether it still has outcomes it could
-- not write (outcomes_failing_at, migration 0056: stuck passes leave its jobs alone a moment).
-- $9 the worker's monotonic time since its previous heartbeat in milliseconds (NULL for none) and
-- $10 a margin: a heartbeat later than both after the one before by the database's clock finds
-- that clock jumped ahead, and records when and by how much more than the worker's own clock it
-- moved (migration 0059).
-- The heartbeat (and a new worker's start) is the clock's time when the row is written, not
-- porter_now() (the start of the transaction, which may have waited for a lock on the table
-- meanwhile): a heartbeat held up is recorded as late as it is, and so is the gap before it,
-- and a worker registered through a stall starts its first lease when it is through (rescues
-- by a worker judge nobody in its first lease). A heartbeat more than half
-- the lease after the one before it makes the worker steady again only from now (see
-- migration 0024; rescues by this worker judge nobody until a lease later).
INSERT INTO porter_workers (id, host, pid, started_at, heartbeat_at, lease_ms, stuck_after, queues, kinds, outcomes_failing_at)
VALUES ($1, $2, $3, coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, clock_timestamp()), coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, clock_timestamp()), $4, $5, $6, $7,
        CASE WHEN $8 THEN coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, clock_timestamp()) END)
ON CONFLICT (id) DO UPDATE SET
    heartbeat_at = coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, clock_timestamp()),
    steady_since = CASE WHEN porter_workers.heartbeat_at < coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, clock_timestamp()) - excluded.lease_ms / 2.0 * interval '1 millisecond'
                        THEN coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, clock_timestamp()) ELSE porter_workers.steady_since END,
    outcomes_failing_at = CASE WHEN $8 THEN coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, clock_timestamp()) ELSE porter_workers.outcomes_failing_at END,
    clock_jumped_at = CASE WHEN porter_workers.heartbeat_at < coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, clock_timestamp()) - ($9::float8 + $10::float8) * interval '1 millisecond'
                           THEN coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, clock_timestamp()) ELSE porter_workers.clock_jumped_at END,
    clock_jumped_ms = CASE WHEN porter_workers.heartbeat_at < coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, clock_timestamp()) - ($9::float8 + $10::float8) * interval '1 millisecond'
                           THEN round(extract(epoch FROM coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, clock_timestamp()) - porter_workers.heartbeat_at) * 1000)::bigint - $9::bigint
                           ELSE porter_workers.clock_jumped_ms END,
    lease_ms     = excluded.lease_ms,
    stuck_after  = excluded.stuck_after,
    queues       = excluded.queues,
    kinds        = excluded.kinds
