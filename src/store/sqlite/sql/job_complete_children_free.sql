-- After a completion batch (migration 0040), the children that waited only for parents it
-- completed: available, or scheduled when their time is still ahead. ?1 is a JSON array of
-- the completed parents' ids. A child counts each of its unresolved edges to those parents,
-- as porter_jobs_finalized does one parent at a time; `<=` rather than `=` so that a count
-- already too low (written by hand) frees the child rather than holding it for good.
WITH ended(child_id, n) AS (
    SELECT d.child_id, count(*)
    FROM json_each(?1) p JOIN porter_job_deps d ON d.parent_id = p.value
    WHERE NOT d.resolved
    GROUP BY d.child_id)
UPDATE porter_jobs
SET waiting_for = 0,
    state = CASE WHEN scheduled_at <= porter_now() THEN 'available' ELSE 'scheduled' END
FROM ended e
WHERE porter_jobs.id = e.child_id AND +porter_jobs.state = 'pending' AND porter_jobs.waiting_for <= e.n
