-- A page of a workflow's jobs in insertion order, found by its steps (porter_workflow_steps,
-- 0028): those above job $2 (0 for the first), $4 of them skipped, at most $3 (NULL: all).
-- Each step's job is looked up by key from the step (LATERAL, kept from being pulled up into
-- a join by its LIMIT). Joined as a plain join, a small page (LIMIT 2 or 3) was planned as a
-- walk of porter_jobs in id order from the first job (steps.job_id = jobs.id let the jobs'
-- primary key give the page's order), each job joined to every step of the workflow: a page
-- of a 100,000-step workflow behind 2,000 other jobs took 15 s, and past the request timeout
-- deeper in (found by review of 1ec3f9d). The page is counted in jobs found, so a step whose
-- job is gone (deleted with triggers off, as a replication subscriber does) is passed over,
-- not counted: the page is full while steps follow (found by review of cfc571e, which chose
-- the page's steps before looking their jobs up). Reads every step of the workflow above $2,
-- as the plain join's good plans did (about 0.2 s for 100,000 steps).
SELECT j.id, s.step, j.kind, j.state, j.attempt, j.attempted_at, j.finalized_at
FROM porter_workflow_steps s
CROSS JOIN LATERAL (
    SELECT j.id, j.kind, j.state, j.attempt, j.attempted_at, j.finalized_at
    FROM porter_jobs j WHERE j.id = s.job_id
    LIMIT 1
) j
WHERE s.workflow_id = $1 AND s.job_id > $2
ORDER BY s.job_id
LIMIT $3 OFFSET $4
