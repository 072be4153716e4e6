-- The jobs the database says one worker ($1) runs and claimed at $2 or later (a range of the
-- index porter_jobs_running: the entries of its jobs before $2 are not read). The ORDER BY is
-- the one that index gives for free: when the statistics say no job runs, every index of
-- running jobs looks equally cheap to the planner, and a sort it would need elsewhere tips it
-- to this one (migration 0022 also keeps porter_jobs_running_key out of reach).
SELECT id, attempt FROM porter_jobs WHERE state = 'running' AND attempted_by = $1 AND attempted_at >= $2
ORDER BY attempted_at
