-- Of the jobs listed to be cancelled (?1, a JSON array of ids), those in a state of the bulk's
-- filter (?2, a JSON array of states, '[]' for any) now, before any of them is cancelled: the
-- bulk then cancels these one at a time (job_cancel_many.sql, with no filter), as PostgreSQL's
-- one statement judges its rows as they were before its triggers ran. Judged at each job's
-- turn instead, a job the end of another listed one had moved on (the next job of its
-- sequence, made scheduled or available) left the filter and was not cancelled.
SELECT id FROM porter_jobs
WHERE id IN (SELECT value FROM json_each(?1))
  AND (?2 = '[]' OR state IN (SELECT value FROM json_each(?2)))
