SELECT id, host, pid, started_at, heartbeat_at, queues, kinds FROM porter_workers ORDER BY started_at, id
