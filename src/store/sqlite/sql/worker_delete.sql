-- A clean shutdown removes its own registration, and with it those of workers silent for more
-- than a day: crashed ones, whose jobs the rescuer took back long ago.
DELETE FROM porter_workers
-- A worker with a lease longer than a day heartbeats less often than that: it is judged by
-- its own lease, like the rescuer judges it.
WHERE id = ?1
   OR heartbeat_at < strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(),
                              printf('-%d seconds', max(86400, max(min(coalesce(lease_ms, 0) / 1000, 40000000000), -40000000000))))
