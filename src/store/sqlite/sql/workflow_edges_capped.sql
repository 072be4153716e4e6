-- At most ?3 parents of job ?2 (a step of a page of workflow ?1's): the first by id, or the
-- latest when ?4 (the steps of a job's own workflow come after every job outside it, which
-- existed before the workflow was inserted), each with the parent's step name when it is a
-- step of the same workflow, and how many parents the job has in all. Walked from one end of
-- the edges' key as far as the cap: a page of 200 steps each after 10,000 jobs read 2,000,000
-- edges whole (review of 6 Dec). Asked once per step: SQLite's statements cost no round trip.
SELECT e.parent_id, p.workflow_step, (SELECT count(*) FROM porter_job_deps WHERE child_id = ?2)
FROM (
    SELECT * FROM (SELECT parent_id FROM porter_job_deps WHERE child_id = ?2 AND NOT ?4
                   ORDER BY parent_id LIMIT ?3)
    UNION ALL
    SELECT * FROM (SELECT parent_id FROM porter_job_deps WHERE child_id = ?2 AND ?4
                   ORDER BY parent_id DESC LIMIT ?3)
) e
LEFT JOIN porter_jobs p ON p.id = e.parent_id AND p.workflow_id = ?1
ORDER BY e.parent_id
