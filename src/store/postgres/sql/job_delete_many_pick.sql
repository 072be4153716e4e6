-- The listed jobs ($1) that a bulk delete may take, locked (in id order, as inserts lock
-- parents) until its transaction ends; job_delete_many.sql then judges them by what has
-- committed since. Running ones stay: their worker still holds them (cancel them first).
-- The sequence locks of the listed jobs first, in the order of their numbers (see job_complete.sql), as an
-- insert of a sequence's job takes its key's: an insert queuing a job behind one of these,
-- not committed yet, is waited for, and job_delete_many.sql then sees that job pending
-- behind it. Without the lock the active job was deleted and the next stayed pending for good.
WITH locked AS MATERIALIZED (
    SELECT count(pg_advisory_xact_lock(1886350450, h)) AS n
    FROM (SELECT DISTINCT hashtext(sequence_key) AS h FROM porter_jobs
          WHERE id = ANY($1::bigint[]) AND sequence_key IS NOT NULL ORDER BY 1) keys
)
SELECT id FROM porter_jobs WHERE id = ANY($1::bigint[]) AND (SELECT n FROM locked) IS NOT NULL
  AND state <> 'running'
  -- $2: the bulk's filter of states (empty for any), judged again on the row it locks.
  AND (cardinality($2::text[]) = 0 OR state = ANY($2::text[]))
ORDER BY id
FOR UPDATE
