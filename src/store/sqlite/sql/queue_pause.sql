INSERT INTO porter_queues (name, paused_at) VALUES (?1, strftime('%Y-%m-%dT%H:%M:%fZ','now'))
ON CONFLICT (name) DO UPDATE SET paused_at = COALESCE(porter_queues.paused_at, excluded.paused_at)
