-- Job $1, sent back to wait by job_release_wait.sql, decided at once where its parents allow:
-- cancelled naming the first (by id) parent it cannot run after that ended failed since the
-- job's claim (its waiting children with it, by porter_job_deps_resolve), or due when it waits
-- for none (through `pending`, so that a batch's callback is counted again by
-- porter_batch_callback_due). A parent that failed before the claim is not held against it:
-- only an operator's retry makes such a job due, and that is the operator's word. Otherwise it
-- waits, and its parents' ends decide it as for any waiting job. Same on SQLite.
WITH failed AS (
    SELECT p.id, p.state FROM porter_jobs c
    JOIN porter_job_deps d ON d.child_id = c.id AND NOT d.after_any
    JOIN porter_jobs p ON p.id = d.parent_id
    WHERE c.id = $1 AND p.state || '' IN ('cancelled', 'discarded')
      AND p.finalized_at > c.attempted_at
    ORDER BY p.id LIMIT 1
)
UPDATE porter_jobs j SET
    state        = CASE WHEN f.id IS NOT NULL THEN 'cancelled' ELSE 'available' END,
    finalized_at = CASE WHEN f.id IS NOT NULL THEN porter_now() END,
    errors       = CASE WHEN f.id IS NOT NULL
                        THEN j.errors || jsonb_build_array(jsonb_build_object('attempt', j.attempt,
                             'at', porter_now(), 'error', format('parent job %s was %s', f.id, f.state)))
                        ELSE j.errors END
FROM (SELECT 1) one LEFT JOIN failed f ON true
-- By primary key only (see job_complete.sql on `COLLATE "C"`).
WHERE j.id = $1 AND j.state COLLATE "C" = 'pending' AND (j.waiting_for = 0 OR f.id IS NOT NULL)
