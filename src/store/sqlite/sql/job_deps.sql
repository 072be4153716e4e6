-- A job's parents (relation 'parent') and children ('child'), with their states, by id: the
-- first ?2 of each (-1: all; a fan-out's root may have 100,000 children, a fan-in step as many
-- parents), each relation's own count of them all beside it.
SELECT relation, id, state, kind, after_any, total FROM (
    SELECT 'parent' AS relation, j.id, j.state, j.kind, d.after_any,
           count(*) OVER () AS total, row_number() OVER (ORDER BY j.id) AS n
    FROM porter_job_deps d JOIN porter_jobs j ON j.id = d.parent_id
    WHERE d.child_id = ?1
    UNION ALL
    SELECT 'child', j.id, j.state, j.kind, d.after_any,
           count(*) OVER (), row_number() OVER (ORDER BY j.id)
    FROM porter_job_deps d JOIN porter_jobs j ON j.id = d.child_id
    WHERE d.parent_id = ?1
) links
WHERE ?2 < 0 OR n <= ?2
ORDER BY 1 DESC, 2
