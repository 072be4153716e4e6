-- Differs from SQLite (whose one writer serializes everything): a bulk retry (and the retry of
-- one job) first takes the sequence locks of the jobs it lists ($1) and of their parents, in
-- the order of their numbers (see job_complete.sql), in a statement of its own, so that
-- job_retry_many.sql's snapshot, taken after them, sees a job of the sequence inserted
-- meanwhile, and leaves the finished one alone where the bulk failed whole on
-- porter_jobs_sequence_active. (job_cancel_many.sql takes the same locks in its own
-- statement: its trigger, not its snapshot, judges the sequence.)
-- Then, in one pass in id order, as a bulk cancel or delete takes theirs: the listed jobs'
-- parents, the listed jobs it may retry, and the waiting (or not yet started) children of
-- the listed finished ones, which its trigger sends back to wait for them. The parents are
-- held so that a parent retried meanwhile by another transaction cannot judge a listed child
-- from a snapshot of its own: it saw the child cancelled and left it alone while this retry
-- saw the parent completed and made the child available, and the child ran beside its
-- parent's new run (review of 3 Dec). Taken before the listed rows in a pass of their own, a
-- parent above a listed job deadlocked with a bulk delete of both (review of 3 Dec). A bulk
-- retry ($2 false) takes only the parents that ended, which a retry can reopen: a running
-- one above another listed job's waiting child deadlocked with that parent's completion,
-- which takes its running rows first and their children after (review of 3 Dec), and a
-- child whose parent runs is not retried anyway. The retry of one job ($2 true) takes every
-- parent, all below it: it counts the unfinished ones into the job's wait, and none may end
-- uncounted before it commits (see job_retry.sql). The
-- update's own scan met the listed rows in the order they lie in the table, and its trigger
-- took the children after them whatever their ids: beside a bulk cancel of the same jobs, or
-- of a child and a listed job younger than it, the two waited for each other (review of 3
-- Dec).
-- The children and parents are found by their edges and every row by its id, never by a
-- scan: an OR of `id = ANY(...)` and `id IN (...)` alone read the whole table.
-- It answers what it judged from its snapshot, which the retry that follows acts on alone
-- (job_retry.sql, job_retry_many.sql; reviews of 6 Dec): the listed jobs it found stopped
-- (`judged`), of those the ones that had ended (`ended`, whose children it locked), and the
-- parents it locked (every one for $2 true; for a bulk, those that had ended). The retry's
-- own snapshot is later: a listed job that ended after this one's, while it waited for a
-- lock (from running, or from available, scheduled or retryable through a claim), had no
-- children locked here, and a parent that ended then was not locked here; acting on those, a
-- retry let a child run before or beside its parent's new run.
WITH judged AS MATERIALIZED (
    SELECT id, state FROM porter_jobs
    WHERE id = ANY($1::bigint[]) AND state NOT IN ('running', 'pending')
),
parents AS MATERIALIZED (
    SELECT DISTINCT d.parent_id AS id FROM porter_job_deps d JOIN porter_jobs p ON p.id = d.parent_id
    WHERE d.child_id = ANY($1::bigint[])
      AND ($2::boolean OR p.state IN ('completed', 'cancelled', 'discarded'))
),
locked AS MATERIALIZED (
    SELECT count(pg_advisory_xact_lock(1886350450, h)) AS n
    FROM (SELECT DISTINCT hashtext(sequence_key) AS h FROM porter_jobs
          WHERE id IN (SELECT unnest($1::bigint[]) UNION SELECT id FROM parents)
            AND sequence_key IS NOT NULL ORDER BY 1) keys
),
kids AS MATERIALIZED (
    SELECT d.child_id AS id FROM porter_jobs p
    JOIN porter_job_deps d ON d.parent_id = p.id
    WHERE p.id = ANY($1::bigint[]) AND p.has_dependents
      AND p.state IN ('completed', 'cancelled', 'discarded')
)
SELECT (SELECT count(*) FROM (
    SELECT id FROM porter_jobs
    WHERE id IN (SELECT unnest($1::bigint[]) UNION SELECT id FROM kids UNION SELECT id FROM parents)
      AND (SELECT n FROM locked) IS NOT NULL
      AND ((id = ANY($1::bigint[]) AND state NOT IN ('running', 'available', 'pending'))
           OR (state IN ('pending', 'available', 'scheduled') AND id IN (SELECT id FROM kids))
           OR id IN (SELECT id FROM parents))
    ORDER BY id FOR UPDATE) r) AS locked,
    ARRAY(SELECT id FROM judged) AS judged,
    ARRAY(SELECT id FROM judged WHERE state IN ('completed', 'cancelled', 'discarded')) AS ended,
    ARRAY(SELECT id FROM parents) AS parents
