INSERT INTO porter_workers (id, host, pid) VALUES (?1, ?2, ?3)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')
