-- job_sequence_busy.sql for a caller's transaction at REPEATABLE READ or SERIALIZABLE, whose
-- snapshot was taken before the sequence's lock: a job that ended since still looks unfinished
-- there. It read so until 7 Dec, and the new job waited `pending` with nothing left to start it
-- or the sequence's later jobs (review of 7 Dec). The job found is locked (FOR SHARE), which
-- fails with a serialization error (40001, the caller's to retry) when it was written since the
-- snapshot: every unfinished job of a sequence that has gone idle was. Run inside a savepoint
-- that is rolled back at once (insert_waiting): the lock is only for its error, and held on, a
-- claim would pass the job over until the caller's commit. Needs UPDATE on porter_jobs, as a
-- lock does. A job that became active since the snapshot fails the insert on
-- porter_jobs_sequence_active instead. One row is enough either way.
SELECT sequence_key FROM porter_jobs
WHERE sequence_key = $1
  AND (state IN ('available','scheduled','running','retryable') OR state = 'pending')
LIMIT 1
FOR SHARE
