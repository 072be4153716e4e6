-- A user retries a job that is neither running nor waiting: available now, history kept, and
-- at least one attempt left. An earlier cancel request is cleared: it was for the run that
-- stopped. A job of a sequence that has another unfinished job waits (pending) for its turn
-- instead (under the sequence's lock, job_retry_lock.sql).
-- A child whose parents have not all ended waits for them again (pending), counting them:
-- retried while a parent ran, it ran before that parent's end. Its edges are all unresolved
-- again (an edge is resolved when its parent was retried after an end the child had acted
-- on): the ends of parents still to end count, and a parent that ended and is retried while
-- the child waits is waited for again (migration 0036). The parents' rows are locked first
-- (job_parents_lock.sql), so none ends or is retried between this look and the commit.
WITH reopened AS (
    UPDATE porter_job_deps d SET resolved = false
    WHERE d.child_id = $1 AND d.resolved
      AND EXISTS (SELECT 1 FROM porter_jobs j WHERE j.id = $1 AND j.state NOT IN ('running','pending'))
),
waiting AS (
    SELECT count(*) AS n FROM porter_job_deps d JOIN porter_jobs p ON p.id = d.parent_id
    WHERE d.child_id = $1 AND p.state NOT IN ('completed','cancelled','discarded')
)
UPDATE porter_jobs SET
    -- Metadata another program wrote as no object is kept as it is (`-` fails on a scalar,
    -- and takes the string's elements out of an array); it holds no request.
    metadata = CASE WHEN jsonb_typeof(metadata) = 'object' THEN metadata - 'cancel_requested_at' ELSE metadata END,
    waiting_for = (SELECT n FROM waiting),
    -- Only a finished job goes in line: an unfinished one (available, scheduled, retryable)
    -- is its sequence's job whose turn it is, and keeps it (put in line, every job of the
    -- sequence would wait and none would ever be promoted).
    state = CASE WHEN (SELECT n FROM waiting) > 0 THEN 'pending'
                 WHEN state IN ('completed','cancelled','discarded')
                  AND sequence_key IS NOT NULL AND EXISTS (
                     SELECT 1 FROM porter_jobs o WHERE o.sequence_key = porter_jobs.sequence_key AND o.id <> porter_jobs.id
                     -- (two lists: see job_sequence_busy.sql)
                     AND (o.state IN ('available','scheduled','running','retryable') OR o.state = 'pending'))
                 THEN 'pending' ELSE 'available' END,
    scheduled_at = porter_now(),
    finalized_at = NULL,
    -- (LEAST: an attempt count a plain INSERT put at the top of `integer` would overflow.)
    max_attempts = GREATEST(max_attempts, LEAST(attempt, 2147483646) + 1)
-- $2: whether job_retry_many_lock.sql judged it stopped; $3: whether it had ended then (its
-- children locked). A job that ended since is not written: its children are not held.
WHERE id = $1 AND state NOT IN ('running','pending') AND $2::boolean
  AND ($3::boolean OR state NOT IN ('completed','cancelled','discarded'))
RETURNING *
