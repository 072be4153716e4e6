-- Deletes the jobs job_delete_many_pick.sql locked ($1), except jobs that others wait for:
-- an unfinished or finished parent whose child has not finished (the child waits for its
-- end, or reads its output when it runs), and a sequence's unfinished job with a next one
-- pending (nothing would ever end it and let the next start). Those stay until that is over.
-- A statement of its own, after the locks: its snapshot sees a child whose insert held a
-- parent's row until it committed (job_parents_mark.sql), which the picking statement's
-- snapshot, taken before it waited, could not.
DELETE FROM porter_jobs
WHERE id = ANY($1::bigint[]) AND state <> 'running'
  AND (cardinality($2::text[]) = 0 OR state = ANY($2::text[]))
  AND NOT (has_dependents AND EXISTS (
      SELECT 1 FROM porter_job_deps d JOIN porter_jobs c ON c.id = d.child_id
      WHERE d.parent_id = porter_jobs.id AND c.state NOT IN ('completed','cancelled','discarded')))
  AND NOT (sequence_key IS NOT NULL AND state IN ('available','scheduled','retryable')
           AND EXISTS (SELECT 1 FROM porter_jobs n
                       WHERE n.sequence_key = porter_jobs.sequence_key AND n.state = 'pending'))
