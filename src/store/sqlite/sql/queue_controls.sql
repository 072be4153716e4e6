-- SQLite only: how many times each queue was paused or given other limits, for the change
-- watcher to compare after each commit of another connection (PostgreSQL sends NOTIFY
-- porter_queue_control instead).
SELECT name, changes FROM porter_queues
