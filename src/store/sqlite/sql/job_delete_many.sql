-- A bulk delete of the listed jobs (?1, a JSON array of ids), except running ones: their
-- worker still holds them (cancel them first).
DELETE FROM porter_jobs WHERE id IN (SELECT value FROM json_each(?1)) AND state <> 'running'
