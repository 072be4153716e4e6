-- SQLite only: when each queue was last paused or given other limits, for the change watcher
-- to compare after each commit of another connection (PostgreSQL sends NOTIFY
-- porter_queue_control instead).
SELECT name, coalesce(changed_at, '') FROM porter_queues
