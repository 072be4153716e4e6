-- Metadata is read as CAST(metadata AS TEXT): a BLOB holding JSON text (another program's,
-- through an SQLite before 3.45) is otherwise read as binary JSON (review of 7 Dec).
-- Fenced. ?4 error, ?5 trace or NULL, ?6 retry modifier ('+16.000 seconds'), ?7 discard now (0/1).
-- A failure of a job whose cancel a user requested ends it cancelled instead of retryable
-- (River's rule); a final failure stays discarded.
-- An `errors` that is not a JSON array (written by another program) starts over as one: its
-- entry is recorded, where json_insert would fail on invalid JSON and leave an object as it is.
-- (job_release, job_cancel_running and the rescues append the same way.)
UPDATE porter_jobs SET
    state        = CASE WHEN ?7 OR attempt >= max_attempts THEN 'discarded'
                        WHEN json_extract(CAST(metadata AS TEXT), '$.cancel_requested_at') IS NOT NULL THEN 'cancelled' ELSE 'retryable' END,
    scheduled_at = CASE WHEN ?7 OR attempt >= max_attempts OR json_extract(CAST(metadata AS TEXT), '$.cancel_requested_at') IS NOT NULL
                        THEN scheduled_at ELSE strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(), ?6) END,
    finalized_at = CASE WHEN ?7 OR attempt >= max_attempts OR json_extract(CAST(metadata AS TEXT), '$.cancel_requested_at') IS NOT NULL
                        THEN porter_now() END,
    errors       = json_insert(CASE WHEN NOT json_valid(errors) THEN '[]' WHEN json_type(errors) = 'array' THEN errors ELSE '[]' END, '$[#]', json_object('attempt', attempt, 'at', porter_now(), 'error', ?4, 'trace', ?5))
WHERE id = ?1 AND state = 'running' AND attempt = ?2 AND attempted_by = ?3
RETURNING *
