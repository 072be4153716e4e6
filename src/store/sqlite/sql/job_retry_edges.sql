-- After a retry of job ?1 (job_retry.sql): its edges are all unresolved again. An edge is
-- resolved when its parent was retried after an end the child had acted on
-- (porter_jobs_reopened); unresolved, the ends of parents still to end count, and a parent that
-- ended and is retried while the child waits is waited for again (migration 0036).
UPDATE porter_job_deps SET resolved = 0
WHERE child_id = ?1 AND resolved
