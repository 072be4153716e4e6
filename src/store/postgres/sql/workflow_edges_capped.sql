-- At most $3 parents of each of the jobs $2 (a page of workflow $1's steps): the first by id,
-- or the latest when $4 (the steps of a job's own workflow come after every job outside it,
-- which existed before the workflow was inserted), each with the parent's step name when it is
-- a step of the same workflow, and how many parents the job has in all. Each job's parents
-- are walked from one end of the edges' key as far as the cap: a page of 200 steps each after
-- 10,000 jobs read 2,000,000 edges whole (review of 6 Dec).
SELECT c.id, e.parent_id, p.workflow_step, t.n
FROM unnest($2::bigint[]) AS c(id)
CROSS JOIN LATERAL (SELECT count(*) AS n FROM porter_job_deps WHERE child_id = c.id) t
CROSS JOIN LATERAL (
    (SELECT d.parent_id FROM porter_job_deps d WHERE d.child_id = c.id
     ORDER BY d.parent_id LIMIT CASE WHEN $4 THEN 0 ELSE $3 END)
    UNION ALL
    (SELECT d.parent_id FROM porter_job_deps d WHERE d.child_id = c.id
     ORDER BY d.parent_id DESC LIMIT CASE WHEN $4 THEN $3 ELSE 0 END)
) e
LEFT JOIN porter_jobs p ON p.id = e.parent_id AND p.workflow_id = $1
ORDER BY c.id, e.parent_id
