-- The parents of a job being inserted (?1, a JSON array of ids), marked as having dependents
-- (so that their end runs the porter_jobs_finalized and porter_jobs_parent_failed triggers),
-- with their states.
UPDATE porter_jobs SET has_dependents = 1
WHERE id IN (SELECT value FROM json_each(?1))
RETURNING id, state
