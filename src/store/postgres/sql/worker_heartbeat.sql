INSERT INTO porter_workers (id, host, pid, started_at, heartbeat_at) VALUES ($1, $2, $3, porter_now(), porter_now())
ON CONFLICT (id) DO UPDATE SET heartbeat_at = porter_now()
