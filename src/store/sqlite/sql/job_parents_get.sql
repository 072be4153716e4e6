-- Which of these ids (?1, a JSON array) are jobs: the parents given to an insert must exist.
SELECT id FROM porter_jobs WHERE id IN (SELECT value FROM json_each(?1))
