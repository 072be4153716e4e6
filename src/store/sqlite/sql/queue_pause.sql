-- Counted (changes, migration 0051): workers give back the queue's jobs they claimed ahead
-- under the count before it and have not started.
INSERT INTO porter_queues (name, paused_at, changes) VALUES (?1, porter_now(), 1)
ON CONFLICT (name) DO UPDATE SET paused_at = COALESCE(porter_queues.paused_at, excluded.paused_at),
    changes = porter_queues.changes + 1
