-- Metadata is read as CAST(metadata AS TEXT): a BLOB holding JSON text (another program's,
-- through an SQLite before 3.45) is otherwise read as binary JSON (review of 7 Dec).
-- A user retries a job that is neither running nor waiting: available now, history kept, and
-- at least one attempt left. An earlier cancel request is cleared: it was for the run that
-- stopped. A job of a sequence that has another unfinished job waits (pending) for its turn
-- instead: a sequence never runs two at once.
-- A child whose parents have not all ended waits for them again (pending), counting them
-- (job_retry_edges.sql reopens its edges, so that their ends count): retried while a parent
-- ran, it ran before that parent's end.
WITH waiting AS (
    SELECT count(*) AS n FROM porter_job_deps d JOIN porter_jobs p ON p.id = d.parent_id
    WHERE d.child_id = ?1 AND p.state NOT IN ('completed','cancelled','discarded')
)
UPDATE porter_jobs SET
    metadata = json_remove(CAST(metadata AS TEXT), '$.cancel_requested_at'),
    waiting_for = (SELECT n FROM waiting),
    -- Only a finished job goes in line: an unfinished one (available, scheduled, retryable)
    -- is its sequence's job whose turn it is, and keeps it (put in line, every job of the
    -- sequence would wait and none would ever be promoted).
    state = CASE WHEN (SELECT n FROM waiting) > 0 THEN 'pending'
                 WHEN state IN ('completed','cancelled','discarded')
                  AND sequence_key IS NOT NULL AND EXISTS (
                     SELECT 1 FROM porter_jobs o WHERE o.id <> porter_jobs.id
                     -- (two lists, each naming the key: see job_sequence_busy.sql)
                     AND ((o.sequence_key = porter_jobs.sequence_key
                           AND o.state IN ('available','scheduled','running','retryable'))
                          OR (o.sequence_key = porter_jobs.sequence_key AND o.state = 'pending')))
                 THEN 'pending' ELSE 'available' END,
    scheduled_at = porter_now(),
    finalized_at = NULL,
    max_attempts = max(max_attempts, attempt + 1)
WHERE id = ?1 AND state NOT IN ('running','pending')
RETURNING *
