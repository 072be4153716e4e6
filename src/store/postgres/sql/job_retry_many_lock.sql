-- Differs from SQLite (whose one writer serializes everything): a bulk retry first takes the
-- sequence locks of the jobs it lists ($1), in the order of their numbers (see
-- job_complete.sql), in a statement of its own, so that job_retry_many.sql's snapshot, taken
-- after them, sees a job of the sequence inserted meanwhile, and leaves the finished one alone
-- where the bulk failed whole on porter_jobs_sequence_active. (job_cancel_many.sql takes the
-- same locks in its own statement: its trigger, not its snapshot, judges the sequence.)
SELECT count(pg_advisory_xact_lock(1886350450, h))
FROM (SELECT DISTINCT hashtext(sequence_key) AS h FROM porter_jobs
      WHERE id = ANY($1::bigint[]) AND sequence_key IS NOT NULL ORDER BY 1) keys
