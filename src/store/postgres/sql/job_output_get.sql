SELECT job_id, output, progress FROM porter_job_outputs WHERE job_id = ANY($1)
