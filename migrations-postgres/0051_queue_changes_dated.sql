-- When a queue was last paused or given other limits (the database's clock at the change). A
-- worker that hears of a change (NOTIFY porter_queue_control) reads it and gives back, unstarted,
-- the jobs of that queue it claimed ahead of a free slot before it (claimed at or before this
-- time): a paused queue starts nothing, and a limit counts what starts under it. NULL for a
-- queue never changed since.
ALTER TABLE porter_queues ADD COLUMN changed_at TIMESTAMPTZ;
