-- What each worker serves (issue 17.7): the queues it claims from and the kinds it runs, as
-- JSON arrays of names, refreshed with every heartbeat, so that jobs no live worker serves
-- can be counted. Same columns and meaning as the PostgreSQL flavour. NULL (rows of binaries
-- from before this migration): the worker may serve anything, and is counted as serving
-- everything while it is live.
ALTER TABLE porter_workers ADD COLUMN queues TEXT CHECK (queues IS NULL OR json_valid(queues));
ALTER TABLE porter_workers ADD COLUMN kinds TEXT CHECK (kinds IS NULL OR json_valid(kinds));
