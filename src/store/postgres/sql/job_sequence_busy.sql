-- Whether the sequence $1 has an unfinished job (active or waiting): a new job of it waits.
-- Read after job_sequence_lock.sql, in a statement of its own, so that under READ COMMITTED
-- (porter's own connections, and most callers') it sees what the lock's previous holder
-- committed. A caller's transaction at REPEATABLE READ or SERIALIZABLE reads its snapshot,
-- taken before the lock: it reads job_sequence_busy_snapshot.sql instead.
-- The unfinished states are spelled as the two lists of the partial indexes on sequence_key
-- (porter_jobs_sequence_active, porter_jobs_sequence_pending), so that each half can use its
-- index: one list of all five implies neither predicate, and the lookup scanned the table.
SELECT sequence_key FROM porter_jobs
WHERE sequence_key = $1
  AND (state IN ('available','scheduled','running','retryable') OR state = 'pending')
LIMIT 1
