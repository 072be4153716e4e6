-- ?1 is a JSON array of job ids.
SELECT job_id, output, progress FROM porter_job_outputs
WHERE job_id IN (SELECT value FROM json_each(?1))
