-- Some parents of each of the jobs $2 (a page of workflow $1's steps), each with the parent's
-- step name when it is a step of the same workflow: the first $3 by id, with how many the job
-- has in all (counted by index); or, when $3 is NULL, those whose ids lie between $4 and $5
-- (the page's first and last: the edges a graph of the page can draw), without a count. Each
-- job's edges are read by their key as far as that and no further: a page of 200 steps each
-- after 10,000 jobs read 2,000,000 edges whole (review of 6 Dec). The step name is looked up
-- per parent (a plain join could be planned as a scan of porter_jobs, as job_links.sql says).
-- The count is taken once per job, beside its edges: in the select list it was taken again
-- for each of the job's rows, up to $3 times (review of 6 Dec).
SELECT c.id, e.parent_id, p.workflow_step, total.n
FROM unnest($2::bigint[]) AS c(id)
CROSS JOIN LATERAL (
    SELECT CASE WHEN $3::bigint IS NOT NULL
                THEN (SELECT count(*) FROM porter_job_deps WHERE child_id = c.id) END AS n
    OFFSET 0
) total
CROSS JOIN LATERAL (
    (SELECT d.parent_id FROM porter_job_deps d
     WHERE d.child_id = c.id AND $3::bigint IS NOT NULL
     ORDER BY d.parent_id LIMIT $3)
    UNION ALL
    (SELECT d.parent_id FROM porter_job_deps d
     WHERE d.child_id = c.id AND $3::bigint IS NULL AND d.parent_id BETWEEN $4 AND $5)
) e
LEFT JOIN LATERAL (
    SELECT j.workflow_step FROM porter_jobs j WHERE j.id = e.parent_id AND j.workflow_id = $1
    OFFSET 0
) p ON true
ORDER BY c.id, e.parent_id
