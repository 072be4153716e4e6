-- After job_complete_children_free.sql, the children that still wait for other parents: their
-- count goes down by their edges to the parents the batch completed (?1, a JSON array of
-- ids), and nothing else of their row is written (a fan-in step waiting for thousands of
-- parents keeps its index entries).
WITH ended(child_id, n) AS (
    SELECT d.child_id, count(*)
    FROM json_each(?1) p JOIN porter_job_deps d ON d.parent_id = p.value
    WHERE NOT d.resolved
    GROUP BY d.child_id)
UPDATE porter_jobs
SET waiting_for = waiting_for - e.n
FROM ended e
WHERE porter_jobs.id = e.child_id AND +porter_jobs.state = 'pending' AND porter_jobs.waiting_for > e.n
