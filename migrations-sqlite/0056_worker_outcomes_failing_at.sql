-- When a worker's heartbeat last said it still had outcomes it could not write (another
-- process holding the write lock long, a disk error): the stuck-job rescue leaves its jobs
-- alone for 2.5 s after it (a third of its lease when shorter), as after a late heartbeat,
-- while those outcomes land. A column of its own, not steady_since: a worker's own rescue of
-- lost workers goes on as after any heartbeat on time. NULL: never. Same text format as
-- heartbeat_at.
ALTER TABLE porter_workers ADD COLUMN outcomes_failing_at TEXT;
