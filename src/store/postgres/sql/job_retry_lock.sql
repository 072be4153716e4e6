-- Differs from SQLite: a retry of a job of a sequence takes the sequence's lock first (see
-- job_sequence_lock.sql), so that it and a concurrent finalize of the sequence's active job
-- cannot both miss each other.
SELECT pg_advisory_xact_lock(1886350450, hashtext(sequence_key)) FROM porter_jobs
WHERE id = $1 AND sequence_key IS NOT NULL
