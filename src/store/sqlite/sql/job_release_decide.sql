-- Job ?1, sent back to wait by job_release_wait.sql, decided at once where its parents allow:
-- cancelled naming the first (by id) parent it cannot run after that ended failed since the
-- job's claim (its waiting children with it, by porter_jobs_parent_failed), or due when it
-- waits for none (through `pending`, so that a batch's callback is counted again by
-- porter_batch_callback_due). A parent that failed before the claim is not held against it:
-- only an operator's retry makes such a job due, and that is the operator's word. Otherwise
-- it waits, and its parents' ends decide it as for any waiting job.
WITH failed AS (
    SELECT p.id, p.state FROM porter_jobs c
    JOIN porter_job_deps d ON d.child_id = c.id AND NOT d.after_any
    JOIN porter_jobs p ON p.id = d.parent_id
    WHERE c.id = ?1 AND (p.state = 'cancelled' OR p.state = 'discarded')
      AND p.finalized_at > c.attempted_at
    ORDER BY p.id LIMIT 1
)
UPDATE porter_jobs SET
    state = CASE WHEN EXISTS (SELECT 1 FROM failed) THEN 'cancelled' ELSE 'available' END,
    finalized_at = CASE WHEN EXISTS (SELECT 1 FROM failed) THEN porter_now() END,
    errors = CASE WHEN EXISTS (SELECT 1 FROM failed)
                  THEN json_insert(CASE WHEN NOT json_valid(errors) THEN '[]'
                                        WHEN json_type(errors) = 'array' THEN errors ELSE '[]' END,
                       '$[#]', json_object('attempt', attempt, 'at', porter_now(),
                       'error', 'parent job ' || (SELECT id FROM failed) || ' was ' || (SELECT state FROM failed)))
                  ELSE errors END
WHERE id = ?1 AND +state = 'pending' AND (waiting_for = 0 OR EXISTS (SELECT 1 FROM failed))
