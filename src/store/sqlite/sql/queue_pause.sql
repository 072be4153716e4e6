-- Dated (changed_at, migration 0051): workers give back the queue's jobs they claimed ahead
-- before it and have not started.
INSERT INTO porter_queues (name, paused_at, changed_at) VALUES (?1, porter_now(), porter_now())
ON CONFLICT (name) DO UPDATE SET paused_at = COALESCE(porter_queues.paused_at, excluded.paused_at),
    changed_at = excluded.changed_at
