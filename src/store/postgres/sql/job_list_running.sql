-- The jobs the database says one worker ($1) runs (index porter_jobs_running).
SELECT id, attempt FROM porter_jobs WHERE state = 'running' AND attempted_by = $1
