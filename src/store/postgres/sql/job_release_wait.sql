-- After job_release.sql gave job $1 back unstarted: a job with parents, none of whose attempts
-- started, is judged again by its parents when one of them ran again since the job's claim (a
-- parent that has not ended, or that ended after the job's `attempted_at`). A retry of a
-- parent while the job was claimed ahead found it running and left it, and the give-back would
-- make it claimable beside that parent's new run, or after that run failed, or (a batch's
-- callback) with the counts of the member's first end. It goes back to `pending`, counting the
-- parents that have not ended; its edges are unresolved for those alone (their ends count);
-- job_release_decide.sql follows. A job that started
-- (porter_job_deps_resolve leaves those too) is not judged again. The parents' rows were locked
-- before the job's (job_release_lock.sql), so none ends or is retried between this look
-- and the commit.
-- "After", not "at": a parent that ended in the millisecond of the claim (SQLite's times are
-- in milliseconds) is taken to have ended before it, as it must have when it made the job due.
-- A retry, a new run and its end all within that millisecond go unseen.
-- Same on SQLite (there the edges take a statement of their own).
WITH target AS MATERIALIZED (
    -- By primary key only (see job_complete.sql on `COLLATE "C"`).
    SELECT j.id FROM porter_jobs j
    WHERE j.id = $1 AND j.state COLLATE "C" = 'available'
      AND j.attempt = (SELECT count(*) FROM jsonb_array_elements(
                           CASE WHEN jsonb_typeof(j.errors) = 'array' THEN j.errors ELSE '[]' END) e
                       WHERE e -> 'unstarted' = 'true'::jsonb)
      AND EXISTS (SELECT 1 FROM porter_job_deps d JOIN porter_jobs p ON p.id = d.parent_id
                  WHERE d.child_id = j.id
                    AND (p.state || '' NOT IN ('completed', 'cancelled', 'discarded')
                         OR p.finalized_at > j.attempted_at))
),
edges AS (
    UPDATE porter_job_deps d SET resolved = p.state || '' IN ('completed', 'cancelled', 'discarded')
    FROM porter_jobs p
    WHERE d.child_id = (SELECT id FROM target) AND p.id = d.parent_id
)
UPDATE porter_jobs j SET
    state = 'pending',
    waiting_for = (SELECT count(*) FROM porter_job_deps d JOIN porter_jobs p ON p.id = d.parent_id
                   WHERE d.child_id = j.id AND p.state || '' NOT IN ('completed', 'cancelled', 'discarded'))
WHERE j.id = (SELECT id FROM target)
