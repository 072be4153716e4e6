-- A bulk retry: job_retry.sql for every listed job ($1) that waits for nothing but a retry:
-- not running (its worker finishes it first), not already available, and not waiting for
-- its parents (pending). A stopped job whose
-- unique key another unfinished job holds stays as it is, and of stopped jobs sharing a key
-- only the newest listed one is retried: the key stays unique among unfinished jobs
-- (porter_jobs_unique_key, checked row by row), and the rest of the batch goes on. Across
-- batches, which go oldest first, the first batch's job takes the key.
UPDATE porter_jobs j SET
    -- (as job_retry.sql: metadata that is no object is kept as it is)
    metadata = CASE WHEN jsonb_typeof(j.metadata) = 'object' THEN j.metadata - 'cancel_requested_at' ELSE j.metadata END,
    state = 'available',
    scheduled_at = porter_now(),
    finalized_at = NULL,
    -- (least: an attempt count a plain INSERT put at the top of `integer` would overflow.)
    max_attempts = greatest(j.max_attempts, least(j.attempt, 2147483646) + 1)
WHERE j.id = ANY($1::bigint[]) AND j.state NOT IN ('running', 'available', 'pending')
  -- $3: the listed jobs job_retry_many_lock.sql judged stopped; $5: those of them that had
  -- ended (their children locked). A job that ended since is left: its children are not held.
  AND j.id = ANY($3::bigint[])
  AND (j.id = ANY($5::bigint[]) OR j.state NOT IN ('completed', 'cancelled', 'discarded'))
  -- $2: the bulk's filter of states (empty for any), judged again on the row this updates.
  AND (cardinality($2::text[]) = 0 OR j.state = ANY($2::text[]))
  -- A child is left alone unless each of its parents has ended as it needs (completed, or
  -- ended in any way for an after_any edge) and is not listed here: retried now, it would run
  -- before an unfinished parent's end, or beside a failed parent that this batch retries
  -- (a bulk retry goes oldest first, so a listed parent is retried in this batch or an
  -- earlier one: its child then finds it unended). Retried alone, job_retry.sql has it wait
  -- for them.
  -- A parent counts as ended only if job_retry_many_lock.sql locked it so ($4): one that
  -- ended after its snapshot is not held, and a retry of it could miss this child.
  AND NOT EXISTS (
        SELECT 1 FROM porter_job_deps d JOIN porter_jobs p ON p.id = d.parent_id
        WHERE d.child_id = j.id
          AND (NOT (p.state = 'completed' OR (d.after_any AND p.state IN ('cancelled', 'discarded')))
               OR p.id <> ALL($4::bigint[])
               OR p.id = ANY($1::bigint[])))
  -- A job of a sequence whose other jobs are not all finished would run beside them: it is
  -- left alone (retried alone, job_retry.sql queues it behind them under the sequence's lock).
  AND (j.sequence_key IS NULL OR NOT EXISTS (
        SELECT 1 FROM porter_jobs q
        WHERE q.sequence_key = j.sequence_key AND q.id <> j.id
          -- (two lists: see job_sequence_busy.sql)
          AND (q.state IN ('available', 'scheduled', 'running', 'retryable') OR q.state = 'pending')))
  -- Of the listed jobs of one sequence this would retry, the oldest only: the statement's
  -- checks read the table as it was before it, so each would see its sequence idle and all
  -- would run at once (porter_jobs_sequence_active refused the statement). Retry again for the
  -- next, once that one has ended.
  -- An older job whose unique key another unfinished job holds is never retried here
  -- (below): it does not count, or neither would be retried, at every submission (review of
  -- 7 Dec).
  AND (j.sequence_key IS NULL OR NOT EXISTS (
        SELECT 1 FROM porter_jobs e
        WHERE e.sequence_key = j.sequence_key AND e.id < j.id AND e.id = ANY($1::bigint[])
          AND e.state NOT IN ('running', 'available', 'pending')
          AND (cardinality($2::text[]) = 0 OR e.state = ANY($2::text[]))
          AND (e.unique_key IS NULL OR e.state IN ('scheduled', 'retryable') OR NOT EXISTS (
                SELECT 1 FROM porter_jobs eo
                WHERE eo.unique_key = e.unique_key AND eo.id <> e.id
                  AND eo.state IN ('available', 'scheduled', 'running', 'retryable', 'pending')))))
  AND (
    j.unique_key IS NULL
    OR j.state IN ('scheduled', 'retryable')
    OR (
      NOT EXISTS (
        SELECT 1 FROM porter_jobs o
        WHERE o.unique_key = j.unique_key AND o.id <> j.id
          -- every state that holds a key (porter_jobs_unique_key), `pending` too
          AND o.state IN ('available', 'scheduled', 'running', 'retryable', 'pending'))
      -- A newer job whose sequence is busy is never retried here (above): it does not count
      -- either.
      AND NOT EXISTS (
        SELECT 1 FROM porter_jobs n
        WHERE n.unique_key = j.unique_key AND n.id > j.id AND n.id = ANY($1::bigint[])
          AND n.state IN ('completed', 'cancelled', 'discarded')
          AND (n.sequence_key IS NULL OR NOT EXISTS (
                SELECT 1 FROM porter_jobs nq
                WHERE nq.sequence_key = n.sequence_key AND nq.id <> n.id
                  AND (nq.state IN ('available', 'scheduled', 'running', 'retryable') OR nq.state = 'pending'))))
    )
  )
RETURNING j.id, j.queue, j.state, j.attempted_by
