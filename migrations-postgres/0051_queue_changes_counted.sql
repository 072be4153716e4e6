-- How many times a queue was paused or given other limits. A claim is made under the count its
-- process last read; a worker that hears of a change (NOTIFY porter_queue_control) reads the
-- count again and gives back, unstarted, the jobs of that queue it claimed ahead of a free slot
-- under a smaller count: a paused queue starts nothing, and a limit counts what starts under
-- it. A count, not a time: a change's time is taken before its commit, which claims may pass.
ALTER TABLE porter_queues ADD COLUMN changes BIGINT NOT NULL DEFAULT 0;
