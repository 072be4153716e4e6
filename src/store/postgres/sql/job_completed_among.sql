-- Of the jobs $2 (by id: completions a worker wrote, and whose answer it lost or could not
-- tell apart from a failure), the ones that attempts of worker $1 completed, as their fences:
-- the fence of the attempt that completed each. By primary key (`COLLATE "C"` keeps the
-- state test off porter_jobs_finalized, see job_complete.sql).
SELECT id, attempt, attempted_by FROM porter_jobs
WHERE id = ANY($2) AND state COLLATE "C" = 'completed' AND attempted_by = $1
ORDER BY id
