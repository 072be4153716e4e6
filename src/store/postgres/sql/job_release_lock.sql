-- Before job_release.sql gives job $1 back unstarted (fenced on its attempt $2 and worker $3):
-- what job_parents_ran_again.sql and job_release_wait.sql read is held until the commit, so that
-- no parent ends or is retried between their look and the commit (an end whose trigger found the
-- job still running would never be counted for it, and it would wait for good). The sequence locks
-- of the job and its parents, in the order of their numbers, then the parents' rows in id order,
-- all below the job's own row, which the release takes next: the order a retry takes them in
-- (job_retry_many_lock.sql). Nothing is taken when the fence no longer holds. (A completion batch
-- takes its rows first and their waiting children after, whatever their ids: with a parent of this
-- job among those children and another among its rows, the two can deadlock; PostgreSQL ends one,
-- and both write again.)
WITH job AS MATERIALIZED (
    -- By primary key only (see job_complete.sql on `COLLATE "C"`).
    SELECT id, sequence_key FROM porter_jobs
    WHERE id = $1 AND state COLLATE "C" = 'running' AND attempt = $2 AND attempted_by = $3
),
parents AS MATERIALIZED (
    SELECT d.parent_id AS id FROM job JOIN porter_job_deps d ON d.child_id = job.id
),
locked AS MATERIALIZED (
    SELECT count(pg_advisory_xact_lock(1886350450, h)) AS n
    FROM (SELECT DISTINCT hashtext(k) AS h
          FROM (SELECT sequence_key AS k FROM job WHERE sequence_key IS NOT NULL
                UNION ALL
                SELECT p.sequence_key FROM porter_jobs p
                WHERE p.id IN (SELECT id FROM parents) AND p.sequence_key IS NOT NULL) ks
          ORDER BY 1) keys
)
SELECT count(*) FROM (
    SELECT id FROM porter_jobs
    WHERE id IN (SELECT id FROM parents) AND (SELECT n FROM locked) IS NOT NULL
    ORDER BY id FOR UPDATE) p
