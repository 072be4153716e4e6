-- A job's parents (relation 'parent') and children ('child'), with their states, by id.
SELECT 'parent' AS relation, j.id, j.state, j.kind, d.after_any FROM porter_job_deps d JOIN porter_jobs j ON j.id = d.parent_id
WHERE d.child_id = $1
UNION ALL
SELECT 'child', j.id, j.state, j.kind, d.after_any FROM porter_job_deps d JOIN porter_jobs j ON j.id = d.child_id
WHERE d.parent_id = $1
ORDER BY 1 DESC, 2
