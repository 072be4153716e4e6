-- A bulk delete of the listed jobs ($1), except running ones: their worker still holds them
-- (cancel them first).
DELETE FROM porter_jobs WHERE id = ANY($1::bigint[]) AND state <> 'running'
