-- Some parents of job ?2 (a step of a page of workflow ?1's), each with the parent's step name
-- when it is a step of the same workflow: the first ?3 by id, with how many the job has in all
-- (counted by index); or, when ?3 is NULL, those whose ids lie between ?4 and ?5 (the page's
-- first and last: the edges a graph of the page can draw), without a count. Read by the edges'
-- key as far as that and no further: a page of 200 steps each after 10,000 jobs read 2,000,000
-- edges whole (review of 6 Dec). Asked once per step: SQLite's statements cost no round trip.
SELECT e.parent_id, p.workflow_step,
       CASE WHEN ?3 IS NOT NULL THEN (SELECT count(*) FROM porter_job_deps WHERE child_id = ?2) END
FROM (
    SELECT * FROM (SELECT parent_id FROM porter_job_deps
                   WHERE child_id = ?2 AND ?3 IS NOT NULL ORDER BY parent_id LIMIT coalesce(?3, 0))
    UNION ALL
    SELECT parent_id FROM porter_job_deps
    WHERE child_id = ?2 AND ?3 IS NULL AND parent_id BETWEEN ?4 AND ?5
) e
LEFT JOIN porter_jobs p ON p.id = e.parent_id AND p.workflow_id = ?1
ORDER BY e.parent_id
