-- Tags a job just inserted as a member (or the callback) of batch ?1.
UPDATE porter_jobs SET batch_id = ?1 WHERE id = ?2
