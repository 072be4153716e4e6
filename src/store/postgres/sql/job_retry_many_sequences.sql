-- Differs from SQLite (whose one writer serializes everything): the sequence keys of the jobs
-- a bulk retry lists ($1), whose locks it takes (job_sequence_lock.sql) before job_retry_many.sql
-- judges whether each sequence is idle: a job of the sequence inserted meanwhile is then seen,
-- and its finished job left alone, where the bulk failed whole on porter_jobs_sequence_active.
SELECT DISTINCT sequence_key FROM porter_jobs
WHERE id = ANY($1::bigint[]) AND sequence_key IS NOT NULL
