-- The parents of the jobs $1, each once in id order, and the sequence keys of those jobs: a
-- bulk retry locks them all (job_parents_lock.sql: the sequence locks in the order of their
-- numbers, then the parents' rows in id order) before it judges the parents' ends, as the
-- retry of one job does.
SELECT array(SELECT DISTINCT d.parent_id FROM porter_job_deps d
             WHERE d.child_id = ANY($1::bigint[]) ORDER BY 1),
       array(SELECT DISTINCT j.sequence_key FROM porter_jobs j
             WHERE j.id = ANY($1::bigint[]) AND j.sequence_key IS NOT NULL)
