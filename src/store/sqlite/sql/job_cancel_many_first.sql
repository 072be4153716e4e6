-- Of the jobs listed to be cancelled together (?1, a JSON array of ids), those waiting for
-- parents are first put out of their parents' reach: to 'retryable' for the rest of this
-- transaction, a state in which no trigger acts on them (a parent's end cancels or promotes
-- only pending jobs, and nothing moves them from 'retryable' before the cancels that follow).
-- The bulk (or the workflow's cancel) then cancels every listed job oldest first (see
-- cancel_order in mod.rs). A sequence's waiting job stays pending (its sequence's unique index
-- allows one job out of 'pending'; the end of its predecessor promotes it, and its own cancel
-- follows).
UPDATE porter_jobs SET state = 'retryable'
WHERE id IN (SELECT value FROM json_each(?1)) AND state = 'pending' AND sequence_key IS NULL
