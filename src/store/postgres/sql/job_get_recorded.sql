-- One job ($1) with what it recorded (output, progress; NULL for none), in one statement: read
-- in two, a job retried and run again in between was shown with its first run's end and its
-- new run's output.
SELECT j.*, o.output AS recorded_output, o.progress AS recorded_progress
FROM porter_jobs j LEFT JOIN porter_job_outputs o ON o.job_id = j.id
WHERE j.id = $1
