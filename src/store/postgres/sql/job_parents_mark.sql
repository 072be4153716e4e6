-- The parents of jobs being inserted, marked as having dependents (so that their end runs the
-- porter_jobs_finalized trigger), with their states. Differs from SQLite: the update locks
-- each parent's row (in id order, so two inserts never deadlock) until this transaction ends,
-- so a parent's finalize either commits before (and this reads its end) or waits for the child
-- and its edges to commit (and the trigger then counts them). Its RETURNING reads the newest
-- version of a row it waited for.
WITH p AS (SELECT id FROM porter_jobs WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE)
UPDATE porter_jobs j SET has_dependents = true FROM p WHERE j.id = p.id
RETURNING j.id, j.state
