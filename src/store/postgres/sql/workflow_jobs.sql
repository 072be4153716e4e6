-- A page of a workflow's jobs in insertion order, found by its steps (porter_workflow_steps,
-- 0028): those above job $2 (0 for the first), $4 of them skipped, at most $3 (NULL: all).
-- The page's steps are chosen first, then their jobs looked up by primary key. Joined before
-- the LIMIT, a small page (LIMIT 2 or 3) was planned as a walk of porter_jobs in id order from
-- the first job (steps.job_id = jobs.id let the jobs' primary key give the page's order), each
-- job joined to every step of the workflow: a page of a 100,000-step workflow behind 2,000
-- other jobs took 15 s, and past the request timeout deeper in (found by review of 1ec3f9d).
-- Every step has its job: a deleted job's steps go with it (porter_jobs_emptied, 0028).
WITH page AS MATERIALIZED (
    SELECT s.job_id, s.step FROM porter_workflow_steps s
    WHERE s.workflow_id = $1 AND s.job_id > $2
    ORDER BY s.job_id
    LIMIT $3 OFFSET $4
)
SELECT j.id, p.step, j.kind, j.state, j.attempt, j.attempted_at, j.finalized_at
FROM page p JOIN porter_jobs j ON j.id = p.job_id
ORDER BY p.job_id
