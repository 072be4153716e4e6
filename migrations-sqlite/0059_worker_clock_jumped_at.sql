-- When a worker's heartbeat last found the database's clock ahead of the worker's own
-- monotonic clock by more than a margin since its heartbeat before (a laptop's sleep, a VM
-- paused, a clock stepped on): the time between was no time its jobs ran, which their own
-- timeouts count on the monotonic clock. The stuck-job rescue counts a running job's time from
-- the later of its start and this (job_rescue_stuck.sql). NULL: never. Same text format as
-- heartbeat_at.
ALTER TABLE porter_workers ADD COLUMN clock_jumped_at TEXT;
