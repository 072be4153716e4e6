-- Metadata is read as CAST(metadata AS TEXT): a BLOB holding JSON text (another program's,
-- through an SQLite before 3.45) is otherwise read as binary JSON (review of 7 Dec).
-- A bulk retry: job_retry.sql for every listed job (?1, a JSON array of ids) that waits for
-- nothing but a retry: not running (its worker finishes it first), not already available, and not waiting for
-- its parents (pending).
-- A stopped job whose unique key another unfinished job holds stays as it is, and of stopped
-- jobs sharing a key only the newest listed one is retried: the key stays unique among
-- unfinished jobs (porter_jobs_unique_key), and the rest of the batch goes on. Across
-- batches, which go oldest first, the first batch's job takes the key.
UPDATE porter_jobs SET
    metadata = json_remove(CAST(metadata AS TEXT), '$.cancel_requested_at'),
    state = 'available',
    scheduled_at = porter_now(),
    finalized_at = NULL,
    max_attempts = max(max_attempts, attempt + 1)
WHERE id IN (SELECT value FROM json_each(?1)) AND state NOT IN ('running', 'available', 'pending')
  -- ?2: the bulk's filter of states (a JSON array, '[]' for any), judged again here.
  AND (?2 = '[]' OR state IN (SELECT value FROM json_each(?2)))
  -- A child is left alone unless each of its parents has ended as it needs (completed, or
  -- ended in any way for an after_any edge) and is not listed here: retried now, it would run
  -- before an unfinished parent's end, or beside a failed parent that this batch retries
  -- (a bulk retry goes oldest first, so a listed parent is retried in this batch or an
  -- earlier one: its child then finds it unended). Retried alone, job_retry.sql has it wait
  -- for them.
  AND NOT EXISTS (
        SELECT 1 FROM porter_job_deps d JOIN porter_jobs p ON p.id = d.parent_id
        WHERE d.child_id = porter_jobs.id
          AND (NOT (p.state = 'completed' OR (d.after_any AND p.state IN ('cancelled', 'discarded')))
               OR p.id IN (SELECT value FROM json_each(?1))))
  -- A job of a sequence whose other jobs are not all finished would run beside them: it is
  -- left alone (retried alone, job_retry.sql queues it behind them under the sequence's lock).
  AND (sequence_key IS NULL OR NOT EXISTS (
        SELECT 1 FROM porter_jobs q
        WHERE q.id <> porter_jobs.id
          -- (two lists, each naming the key: see job_sequence_busy.sql)
          AND ((q.sequence_key = porter_jobs.sequence_key
                AND q.state IN ('available', 'scheduled', 'running', 'retryable'))
               OR (q.sequence_key = porter_jobs.sequence_key AND q.state = 'pending'))))
  -- Of the listed jobs of one sequence this would retry, the oldest only: the statement's
  -- checks read the table as it was before it, so each would see its sequence idle and all
  -- would run at once (porter_jobs_sequence_active refused the statement). Retry again for the
  -- next, once that one has ended.
  -- An older job whose unique key another unfinished job holds is never retried here
  -- (below): it does not count, or neither would be retried, at every submission (review of
  -- 7 Dec).
  AND (sequence_key IS NULL OR NOT EXISTS (
        SELECT 1 FROM porter_jobs e
        WHERE e.sequence_key = porter_jobs.sequence_key AND e.id < porter_jobs.id
          AND e.id IN (SELECT value FROM json_each(?1))
          AND e.state NOT IN ('running', 'available', 'pending')
          AND (?2 = '[]' OR e.state IN (SELECT value FROM json_each(?2)))
          AND (e.unique_key IS NULL OR e.state IN ('scheduled', 'retryable') OR NOT EXISTS (
                SELECT 1 FROM porter_jobs eo
                WHERE eo.unique_key = e.unique_key AND eo.id <> e.id
                  AND eo.state IN ('available', 'scheduled', 'running', 'retryable', 'pending')))))
  AND (
    unique_key IS NULL
    OR state IN ('scheduled', 'retryable')
    OR (
      NOT EXISTS (
        SELECT 1 FROM porter_jobs o
        WHERE o.unique_key = porter_jobs.unique_key AND o.id <> porter_jobs.id
          -- every state that holds a key (porter_jobs_unique_key), `pending` too
          AND o.state IN ('available', 'scheduled', 'running', 'retryable', 'pending'))
      -- A newer job whose sequence is busy is never retried here (above): it does not count
      -- either.
      AND NOT EXISTS (
        SELECT 1 FROM porter_jobs n
        WHERE n.unique_key = porter_jobs.unique_key AND n.id > porter_jobs.id
          AND n.id IN (SELECT value FROM json_each(?1))
          -- `+`: found by the listed ids, never by walking every finished job in an index on
          -- state (porter_jobs_finalized since 0041, porter_jobs_fetch before).
          AND +n.state IN ('completed', 'cancelled', 'discarded')
          AND (n.sequence_key IS NULL OR NOT EXISTS (
                SELECT 1 FROM porter_jobs nq
                WHERE nq.id <> n.id
                  -- (two lists, each naming the key, as above)
                  AND ((nq.sequence_key = n.sequence_key
                        AND nq.state IN ('available', 'scheduled', 'running', 'retryable'))
                       OR (nq.sequence_key = n.sequence_key AND nq.state = 'pending')))))
    )
  )
RETURNING id, queue, state, attempted_by
