-- The listed jobs ($1) that a bulk delete may take, locked (in id order, as inserts lock
-- parents) until its transaction ends; job_delete_many.sql then judges them by what has
-- committed since. Running ones stay: their worker still holds them (cancel them first).
SELECT id FROM porter_jobs WHERE id = ANY($1::bigint[]) AND state <> 'running'
ORDER BY id
FOR UPDATE
