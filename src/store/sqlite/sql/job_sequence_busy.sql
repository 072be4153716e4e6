-- Whether a sequence has an unfinished job (active or waiting): a new job of it then waits.
-- The unfinished states are spelled as the lists of the two partial indexes on sequence_key
-- (porter_jobs_sequence_active, porter_jobs_sequence_pending), so that SQLite reads each half
-- from its index: one list of all five implied neither index's WHERE, and the lookup walked
-- porter_jobs_fetch through every unfinished job of every queue. Each half names the key
-- itself: SQLite reads an OR from two indexes only where each side constrains an indexed
-- column, and since 0041 no index has `state` in its key, so a `state` test alone on one side
-- made the lookup scan the table. (PostgreSQL's bitmap OR needs no such repetition.)
SELECT EXISTS (SELECT 1 FROM porter_jobs
               WHERE (sequence_key = ?1 AND state IN ('available','scheduled','running','retryable'))
                  OR (sequence_key = ?1 AND state = 'pending'))
