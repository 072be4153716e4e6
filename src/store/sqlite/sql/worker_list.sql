SELECT id, host, pid, started_at, heartbeat_at FROM porter_workers ORDER BY started_at, id
