-- A bulk delete of the listed jobs (?1, a JSON array of ids), except running ones (their
-- worker still holds them: cancel them first) and jobs that others wait for: an unfinished
-- or finished parent whose child has not finished (the child waits for its end, or reads its
-- output when it runs), and a sequence's unfinished job with a next one pending (nothing
-- would ever end it and let the next start). Those stay until that is over.
DELETE FROM porter_jobs
WHERE id IN (SELECT value FROM json_each(?1)) AND state <> 'running'
  -- ?2: the bulk's filter of states (a JSON array, '[]' for any), judged again here.
  AND (?2 = '[]' OR state IN (SELECT value FROM json_each(?2)))
  AND NOT (has_dependents AND EXISTS (
      SELECT 1 FROM porter_job_deps d JOIN porter_jobs c ON c.id = d.child_id
      WHERE d.parent_id = porter_jobs.id AND c.state NOT IN ('completed','cancelled','discarded')))
  AND NOT (sequence_key IS NOT NULL AND state IN ('available','scheduled','retryable')
           AND EXISTS (SELECT 1 FROM porter_jobs n
                       WHERE n.sequence_key = porter_jobs.sequence_key AND n.state = 'pending'))
