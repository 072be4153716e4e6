INSERT INTO porter_queues (name, paused_at) VALUES (?1, NULL)
ON CONFLICT (name) DO UPDATE SET paused_at = NULL
