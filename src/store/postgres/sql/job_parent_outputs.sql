-- A job's ($1) parents, by id, each with its state and the output it recorded (NULL for none),
-- in one statement: read in two (the parents, then their outputs), a parent retried and run
-- again in between was answered with its first run's end and its new run's output.
SELECT j.id, j.state, j.kind, d.after_any, o.output
FROM porter_job_deps d
JOIN porter_jobs j ON j.id = d.parent_id
LEFT JOIN porter_job_outputs o ON o.job_id = j.id
WHERE d.child_id = $1
ORDER BY j.id
