-- Fenced: only the running attempt of the worker that claimed the job records its output or
-- progress (?4, ?5: JSON text, or NULL to keep what is stored). No row when the fence does not
-- match, so nothing is written.
INSERT INTO porter_job_outputs (job_id, output, progress, updated_at)
SELECT id, ?4, ?5, porter_now() FROM porter_jobs
WHERE id = ?1 AND state = 'running' AND attempt = ?2 AND attempted_by = ?3
ON CONFLICT (job_id) DO UPDATE SET
    output     = COALESCE(excluded.output, porter_job_outputs.output),
    progress   = COALESCE(excluded.progress, porter_job_outputs.progress),
    updated_at = excluded.updated_at
RETURNING job_id
