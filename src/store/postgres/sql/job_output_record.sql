-- Fenced: only the running attempt of the worker that claimed the job records its output or
-- progress ($4, $5: or NULL to keep what is stored). No row when the fence does not match.
-- Differs from SQLite (whose one writer serializes everything): FOR SHARE makes a rescue or
-- cancel that commits first win, re-checking the fence on the row's newest version, so a stale
-- worker's write changes nothing even when it races the write that fenced it off.
INSERT INTO porter_job_outputs (job_id, output, progress, updated_at)
SELECT id, $4, $5, porter_now() FROM porter_jobs
-- By primary key only (see job_complete.sql on `COLLATE "C"`).
WHERE id = $1 AND state COLLATE "C" = 'running' AND attempt = $2 AND attempted_by = $3
FOR SHARE
ON CONFLICT (job_id) DO UPDATE SET
    output     = COALESCE(EXCLUDED.output, porter_job_outputs.output),
    progress   = COALESCE(EXCLUDED.progress, porter_job_outputs.progress),
    updated_at = EXCLUDED.updated_at
RETURNING job_id
