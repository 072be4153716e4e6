-- Metadata is read as CAST(metadata AS TEXT): a BLOB holding JSON text (another program's,
-- through an SQLite before 3.45) is otherwise read as binary JSON (review of 7 Dec).
-- A bulk cancel: job_cancel.sql for one listed job (?1); the bulk sends its jobs one at a
-- time, in the order cancel_order in mod.rs gives, those its filter of states matched before
-- any was cancelled (job_cancel_many_matching.sql). A running job only records the request and
-- stays 'running'; its worker sees the commit through its change watcher (PRAGMA
-- data_version) and stops it (fenced), as for a single cancel.
UPDATE porter_jobs SET
    state        = CASE WHEN state = 'running' THEN state ELSE 'cancelled' END,
    finalized_at = CASE WHEN state = 'running' THEN finalized_at ELSE porter_now() END,
    metadata     = CASE WHEN state = 'running' AND json_extract(CAST(metadata AS TEXT), '$.cancel_requested_at') IS NULL
                        -- Metadata another program wrote as no object (json_set would leave
                        -- it as it is, and the request would be lost) is replaced by one.
                        THEN json_set(CASE WHEN json_type(CAST(metadata AS TEXT)) = 'object' THEN CAST(metadata AS TEXT) ELSE '{}' END,
                                      '$.cancel_requested_at', porter_now())
                        ELSE metadata END
WHERE id = ?1 AND state IN ('available','scheduled','running','retryable','pending')
  -- A running job asked to stop already is left out: nothing is asked again, and the answer
  -- counts it no more (a second cancel counted it as asked again).
  AND NOT (state = 'running' AND json_extract(CAST(metadata AS TEXT), '$.cancel_requested_at') IS NOT NULL)
RETURNING id, queue, state, attempted_by
