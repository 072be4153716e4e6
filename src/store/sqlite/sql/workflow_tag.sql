-- Tags a job just inserted as step ?2 of workflow ?1 (same transaction as the insert).
UPDATE porter_jobs SET workflow_id = ?1, workflow_step = ?2 WHERE id = ?3
