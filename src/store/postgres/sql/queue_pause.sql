-- Dated (changed_at, migration 0051): workers give back the queue's jobs they claimed ahead
-- before it and have not started. clock_timestamp(), not the transaction's start: a claim that
-- committed after this statement began was made under the old settings.
INSERT INTO porter_queues (name, paused_at, changed_at) VALUES ($1, porter_now(), clock_timestamp())
ON CONFLICT (name) DO UPDATE SET paused_at = COALESCE(porter_queues.paused_at, EXCLUDED.paused_at),
    changed_at = EXCLUDED.changed_at
