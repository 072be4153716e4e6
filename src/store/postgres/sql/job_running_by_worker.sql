SELECT attempted_by, count(*) FROM porter_jobs
WHERE state = 'running' AND attempted_by IS NOT NULL
GROUP BY attempted_by
