-- Each worker's own lease and stuck limits (issue 11.2): rescue judges a worker by the lease
-- it registered, not by the rescuing process's, and a job's stuck limit is the one of the
-- worker that claimed it. NULL (rows of binaries from before this migration): the rescuing
-- process's own settings apply, as before.
ALTER TABLE porter_workers ADD COLUMN lease_ms INTEGER;      -- milliseconds
ALTER TABLE porter_workers ADD COLUMN stuck_after TEXT;      -- JSON object: kind -> milliseconds
