-- Differs from SQLite (whose one writer serializes everything): a bulk retry (and a retry of
-- one job, after its parents' locks) first takes the sequence locks of the jobs it lists ($1),
-- in the order of their numbers (see job_complete.sql), in a statement of its own, so that
-- job_retry_many.sql's snapshot, taken after them, sees a job of the sequence inserted
-- meanwhile, and leaves the finished one alone where the bulk failed whole on
-- porter_jobs_sequence_active. (job_cancel_many.sql takes the same locks in its own
-- statement: its trigger, not its snapshot, judges the sequence.)
-- Then the rows job_retry_many.sql may write, in id order, as a bulk cancel or delete takes
-- theirs: the listed jobs it may retry, and the waiting (or not yet started) children of the
-- listed finished ones, which its trigger sends back to wait for them. The update's own scan
-- met the listed rows in the order they lie in the table, and its trigger took the children
-- after them whatever their ids: beside a bulk cancel of the same jobs, or of a child and a
-- listed job younger than it, the two waited for each other (review of 3 Dec).
WITH locked AS MATERIALIZED (
    SELECT count(pg_advisory_xact_lock(1886350450, h)) AS n
    FROM (SELECT DISTINCT hashtext(sequence_key) AS h FROM porter_jobs
          WHERE id = ANY($1::bigint[]) AND sequence_key IS NOT NULL ORDER BY 1) keys
),
-- The children are found by their edges and every row by its id, never by a scan: an OR of
-- `id = ANY(...)` and `id IN (...)` alone read the whole table.
kids AS MATERIALIZED (
    SELECT d.child_id AS id FROM porter_jobs p
    JOIN porter_job_deps d ON d.parent_id = p.id
    WHERE p.id = ANY($1::bigint[]) AND p.has_dependents
      AND p.state IN ('completed', 'cancelled', 'discarded')
)
SELECT count(*) FROM (
    SELECT id FROM porter_jobs
    WHERE id IN (SELECT unnest($1::bigint[]) UNION SELECT id FROM kids)
      AND (SELECT n FROM locked) IS NOT NULL
      AND ((id = ANY($1::bigint[]) AND state NOT IN ('running', 'available', 'pending'))
           OR (state IN ('pending', 'available', 'scheduled') AND id IN (SELECT id FROM kids)))
    ORDER BY id FOR UPDATE) r
