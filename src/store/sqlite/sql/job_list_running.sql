-- The jobs the database says one worker (?1) runs and claimed at ?2 or later (a range of the
-- index porter_jobs_running).
SELECT id, attempt FROM porter_jobs WHERE state = 'running' AND attempted_by = ?1 AND attempted_at >= ?2
