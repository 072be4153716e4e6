-- Of the jobs $2 (by id: those the worker holds and has not started), the running ones of
-- worker $1 that a parent's retry would have sent back to wait had they not been claimed:
-- none of their attempts before this one started (each was given back unstarted), and a
-- parent has not ended or ended after their claim. The worker gives such a job back instead
-- of starting it, and the give-back judges it again: job_release asks this of the job it
-- gives back unstarted, before the release, and if so sends it back to wait
-- (job_release_wait.sql). "After", not "at": a parent that ended in the millisecond of the
-- claim (SQLite's times are in milliseconds) is taken to have ended before it, as it must
-- have when it made the job due; a retry, a new run and its end all within that millisecond
-- go unseen. By
-- primary key (see job_cancel_requests.sql).
SELECT j.id, j.attempt, j.attempted_by FROM porter_jobs j
WHERE j.id = ANY($2) AND j.state COLLATE "C" = 'running' AND j.attempted_by = $1
  AND j.attempt - 1 = (SELECT count(*) FROM jsonb_array_elements(
                           CASE WHEN jsonb_typeof(j.errors) = 'array' THEN j.errors ELSE '[]' END) e
                       WHERE e -> 'unstarted' = 'true'::jsonb)
  AND EXISTS (SELECT 1 FROM porter_job_deps d JOIN porter_jobs p ON p.id = d.parent_id
              WHERE d.child_id = j.id
                AND (p.state || '' NOT IN ('completed', 'cancelled', 'discarded')
                     OR p.finalized_at > j.attempted_at))
ORDER BY j.id
