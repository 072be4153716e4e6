-- The sequences (of $1) that have an unfinished job (active or waiting): a new job of one
-- waits. Read after job_sequence_lock.sql, in a statement of its own, so that it sees what the
-- lock's previous holder committed.
SELECT DISTINCT sequence_key FROM porter_jobs
WHERE sequence_key = ANY($1::text[]) AND state IN ('available','scheduled','running','retryable','pending')
