-- Postgres only: tells every process that queue $1 was paused or given other limits
-- (LISTEN porter_queue_control); their workers give back the jobs of that queue they claimed
-- ahead of a free slot and have not started. Sent inside the writing transaction, so it is
-- delivered at commit and never for a rollback. SQLite's change watcher reads porter_queues
-- after each commit of another connection instead.
SELECT pg_notify('porter_queue_control', $1)
