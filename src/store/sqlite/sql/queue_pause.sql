INSERT INTO porter_queues (name, paused_at) VALUES (?1, porter_now())
ON CONFLICT (name) DO UPDATE SET paused_at = COALESCE(porter_queues.paused_at, excluded.paused_at)
