-- A page of a workflow's steps in insertion order (porter_workflow_steps, 0028): those above
-- job $2 (0 for the first), $4 of them skipped, at most $3 (NULL: all), each with its job
-- (NULLs for a step whose job is gone: deleted with triggers off, as a replication subscriber
-- does; the driver passes over it and reads on, so that a page stays full while steps follow).
-- The page's steps are chosen first, then their jobs looked up by key. Joined before the
-- LIMIT, a small page (LIMIT 2 or 3) was planned as a walk of porter_jobs in id order from the
-- first job (steps.job_id = jobs.id let the jobs' primary key give the page's order), each job
-- joined to every step of the workflow: a page of a 100,000-step workflow behind 2,000 other
-- jobs took 15 s, and past the request timeout deeper in (found by review of 1ec3f9d); and a
-- LATERAL lookup per step before the LIMIT took 0.2-0.3 s a page (review of 7275c98), where
-- this takes about 20 ms.
WITH page AS MATERIALIZED (
    SELECT s.job_id, s.step FROM porter_workflow_steps s
    WHERE s.workflow_id = $1 AND s.job_id > $2
    ORDER BY s.job_id
    LIMIT $3 OFFSET $4
)
SELECT p.job_id, p.step, j.id, j.kind, j.state, j.attempt, j.attempted_at, j.finalized_at
FROM page p LEFT JOIN porter_jobs j ON j.id = p.job_id
ORDER BY p.job_id
