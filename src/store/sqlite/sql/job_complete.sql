-- Fenced: only the running attempt of the worker that claimed it can complete it.
-- A whole batch in one statement, like on Postgres: ?1 is a JSON array of [id, attempt,
-- worker_id] fences, each joined to its row by primary key. The unary + keeps the planner
-- from walking every running job through porter_jobs_fetch instead; the clock in a scalar
-- subquery is formatted once per statement. Returns the fences that matched, and whether each
-- job has dependents (whose count `job_complete_children_*.sql` then lowers: see migration 0040).
-- Read as 0 or 1 whatever another program wrote there (text, NULL): one such row failed the
-- reading of its whole batch, whose jobs were put back and ran again. Anything but 0 counts
-- as having dependents, which costs only a look for edges.
UPDATE porter_jobs SET state = 'completed', finalized_at = (SELECT porter_now())
FROM (SELECT value ->> 0 AS id, value ->> 1 AS attempt, value ->> 2 AS worker_id FROM json_each(?1)) AS f
WHERE porter_jobs.id = f.id AND +porter_jobs.state = 'running'
  AND porter_jobs.attempt = f.attempt AND porter_jobs.attempted_by = f.worker_id
RETURNING porter_jobs.id, porter_jobs.attempt, porter_jobs.attempted_by, porter_jobs.has_dependents IS NOT 0
