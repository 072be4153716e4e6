-- How many times a queue was paused or given other limits, as
-- migrations-postgres/0051_queue_changes_counted.sql. A worker hears of a change through the
-- change watcher, which reads this column after each commit of another connection.
ALTER TABLE porter_queues ADD COLUMN changes INTEGER NOT NULL DEFAULT 0;
