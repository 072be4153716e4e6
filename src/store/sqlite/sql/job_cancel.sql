-- Metadata is read as CAST(metadata AS TEXT): a BLOB holding JSON text (another program's,
-- through an SQLite before 3.45) is otherwise read as binary JSON (review of 7 Dec).
-- A user cancels an unfinished job. One that is not running is cancelled at once. A running
-- one only records the request (metadata cancel_requested_at, River's way) and stays
-- 'running', so that its unique key stays held until its worker has stopped it; the worker
-- learns of it through its change watcher (PRAGMA data_version) and then writes 'cancelled'
-- itself (fenced). Asking twice keeps the first request's time.
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
RETURNING *
