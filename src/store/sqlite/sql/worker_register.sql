-- ?4 the worker's own lease in milliseconds, ?5 its stuck limits (JSON object: kind -> ms),
-- ?6 and ?7 the queues and kinds it serves (JSON arrays of names).
INSERT INTO porter_workers (id, host, pid, started_at, heartbeat_at, lease_ms, stuck_after, queues, kinds)
VALUES (?1, ?2, ?3, porter_now(), porter_now(), ?4, ?5, ?6, ?7)
ON CONFLICT (id) DO UPDATE SET
    heartbeat_at = porter_now(),
    lease_ms     = excluded.lease_ms,
    stuck_after  = excluded.stuck_after,
    queues       = excluded.queues,
    kinds        = excluded.kinds
