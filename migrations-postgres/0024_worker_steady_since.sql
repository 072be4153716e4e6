-- When each worker's heartbeats became steady again after a gap: a heartbeat recorded more
-- than half its lease after the one before (its process stopped, or the database took no
-- write from anyone). A rescue asked by a worker judges nobody lost until that worker has
-- been steady for a whole lease, so neither in its first lease: the other workers'
-- heartbeats, held up by the same stall, are still coming in. NULL: steady since it
-- registered (started_at; rows of binaries from before this migration never set it).
ALTER TABLE porter_workers ADD COLUMN steady_since TIMESTAMPTZ;
