-- When a queue was last paused or given other limits (the database's clock at the change), as
-- migrations-postgres/0051_queue_changes_dated.sql. A worker hears of a change through the
-- change watcher, which reads this column after each commit of another connection.
ALTER TABLE porter_queues ADD COLUMN changed_at TEXT;
