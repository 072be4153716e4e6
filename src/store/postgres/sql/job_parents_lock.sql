-- Locks what job_parents_mark.sql locks, in the same order, and marks nothing: the sequence
-- locks of the parents $1 and of the sequences $2, in the order of their numbers, then the
-- parents' rows in id order. A workflow's insert with sequence keys takes them all before its
-- first run of steps (see insert_workflow in workflow.rs): run by run, each run's marks took its own
-- parents and sequences after the rows of the runs before, out of the order every other
-- path takes them in, and could deadlock with one. The marks then find them held.
WITH locked AS MATERIALIZED (
    SELECT count(pg_advisory_xact_lock(1886350450, h)) AS n
    FROM (SELECT DISTINCT hashtext(k) AS h
          FROM (SELECT sequence_key AS k FROM porter_jobs
                WHERE id = ANY($1::bigint[]) AND sequence_key IS NOT NULL
                UNION ALL SELECT unnest($2::text[])) ks
          ORDER BY 1) keys
)
SELECT count(*) FROM (
    SELECT id FROM porter_jobs WHERE id = ANY($1::bigint[]) AND (SELECT n FROM locked) IS NOT NULL
    ORDER BY id FOR UPDATE) p
