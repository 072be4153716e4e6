-- Whether the sequence $1 has an unfinished job (active or waiting): a new job of it waits.
-- Read after job_sequence_lock.sql, in a statement of its own, so that under READ COMMITTED
-- (porter's own connections) it sees what the lock's previous holder committed.
-- A caller's transaction at REPEATABLE READ or SERIALIZABLE reads its snapshot instead, taken
-- before the lock: a job that ended since still looked unfinished, the new job waited, and
-- nothing ever started it or the sequence's later jobs (review of 7 Dec). There the job found
-- is locked (FOR SHARE), which fails with a serialization error (40001, the caller's to retry)
-- when it was written since the snapshot: every unfinished job of an idle sequence was. A
-- job that became active since the snapshot fails the insert on porter_jobs_sequence_active.
-- One row is enough either way, and locks no more.
-- The unfinished states are spelled as the two lists of the partial indexes on sequence_key
-- (porter_jobs_sequence_active, porter_jobs_sequence_pending), so that each half can use its
-- index: one list of all five implies neither predicate, and the lookup scanned the table.
SELECT sequence_key FROM (
    SELECT sequence_key FROM porter_jobs
    WHERE sequence_key = $1
      AND (state IN ('available','scheduled','running','retryable') OR state = 'pending')
      AND current_setting('transaction_isolation') = 'read committed'
    LIMIT 1
) fresh
UNION ALL
SELECT sequence_key FROM (
    SELECT sequence_key FROM porter_jobs
    WHERE sequence_key = $1
      AND (state IN ('available','scheduled','running','retryable') OR state = 'pending')
      AND current_setting('transaction_isolation') <> 'read committed'
    LIMIT 1
    FOR SHARE
) locked
