-- Postgres only: after a retry of the jobs $1, tells each worker that holds a child of theirs
-- (running: started, or claimed ahead and waiting for a slot) to look at its jobs again, on
-- its cancel subscription (LISTEN porter_cancel): a child claimed ahead that has not started
-- is given back instead (see job_parents_ran_again.sql). Delivered at commit. SQLite's
-- workers see the commit through PRAGMA data_version.
SELECT count(pg_notify('porter_cancel', w))
FROM (SELECT DISTINCT c.attempted_by AS w
      FROM porter_job_deps d JOIN porter_jobs c ON c.id = d.child_id
      WHERE d.parent_id = ANY($1::bigint[]) AND c.state || '' = 'running'
        AND c.attempted_by IS NOT NULL) workers
