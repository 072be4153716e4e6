-- SQLite only: how many times each queue was paused or given other limits, for the change
-- watcher to compare after each commit of another connection (PostgreSQL sends NOTIFY
-- porter_queue_control instead).
-- A row another program wrote that porter cannot read is passed over (as in
-- worker_cancels_counted.sql).
SELECT name, changes FROM porter_queues
WHERE typeof(name) = 'text' AND typeof(changes) = 'integer'
