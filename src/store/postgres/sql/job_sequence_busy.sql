-- The sequences (of $1) that have an unfinished job (active or waiting): a new job of one
-- waits. Read after job_sequence_lock.sql, in a statement of its own, so that it sees what the
-- lock's previous holder committed.
-- The unfinished states are spelled as the two lists of the partial indexes on sequence_key
-- (porter_jobs_sequence_active, porter_jobs_sequence_pending), so that each half can use its
-- index: one list of all five implies neither predicate, and the lookup scanned the table.
SELECT DISTINCT sequence_key FROM porter_jobs
WHERE sequence_key = ANY($1::text[])
  AND (state IN ('available','scheduled','running','retryable') OR state = 'pending')
