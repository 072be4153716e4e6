-- What each worker serves (issue 17.7): the queues it claims from and the kinds it runs, as
-- JSON arrays of names, refreshed with every heartbeat, so that jobs no live worker serves
-- can be counted. Same columns and meaning as the SQLite flavour. NULL (rows of binaries from
-- before this migration): the worker may serve anything, and is counted as serving everything
-- while it is live.
ALTER TABLE porter_workers
    ADD COLUMN queues JSONB,
    ADD COLUMN kinds  JSONB;
