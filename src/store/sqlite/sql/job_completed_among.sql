-- Of the jobs ?2 (a JSON array of ids: completions a worker wrote, and whose answer it lost or
-- could not tell apart from a failure), the ones that attempts of worker ?1 completed, as
-- their fences: the fence of the attempt that completed each. By primary key (the unary +
-- keeps the state test off porter_jobs_finalized).
SELECT id, attempt, attempted_by FROM porter_jobs
WHERE id IN (SELECT value FROM json_each(?2)) AND +state = 'completed' AND attempted_by = ?1
ORDER BY id
