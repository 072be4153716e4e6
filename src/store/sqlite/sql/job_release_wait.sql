-- After job_release.sql gave job ?1 back unstarted: a job with parents, none of whose attempts
-- started, is judged again by its parents when one of them ran again since the job's claim (a
-- parent that has not ended, or that ended after the job's `attempted_at`). A retry of a
-- parent while the job was claimed ahead found it running and left it, and the give-back would
-- make it claimable beside that parent's new run, or after that run failed, or (a batch's
-- callback) with the counts of the member's first end. It goes back to `pending`, counting the
-- parents that have not ended; job_release_edges.sql and job_release_decide.sql follow. A job
-- that started (porter_jobs_reopened leaves those too) is not judged again.
-- "After", not "at": a parent that ended in the millisecond of the claim (SQLite's times are
-- in milliseconds) is taken to have ended before it, as it must have when it made the job due.
-- A retry, a new run and its end all within that millisecond go unseen.
-- Same on PostgreSQL.
UPDATE porter_jobs SET
    state = 'pending',
    waiting_for = (SELECT count(*) FROM porter_job_deps d JOIN porter_jobs p ON p.id = d.parent_id
                   WHERE d.child_id = ?1 AND p.state NOT IN ('completed', 'cancelled', 'discarded'))
WHERE id = ?1 AND +state = 'available'
  AND attempt = (SELECT count(*) FROM json_each(CASE WHEN NOT json_valid(porter_jobs.errors) THEN '[]'
                                                     WHEN json_type(porter_jobs.errors) = 'array' THEN porter_jobs.errors
                                                     ELSE '[]' END) e
                 WHERE CASE WHEN e.type = 'object' THEN json_type(e.value, '$.unstarted') END = 'true')
  AND EXISTS (SELECT 1 FROM porter_job_deps d JOIN porter_jobs p ON p.id = d.parent_id
              WHERE d.child_id = ?1
                AND (p.state NOT IN ('completed', 'cancelled', 'discarded')
                     OR p.finalized_at > porter_jobs.attempted_at))
