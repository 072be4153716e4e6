-- Metadata is read as CAST(metadata AS TEXT): a BLOB holding JSON text (another program's,
-- through an SQLite before 3.45) is otherwise read as binary JSON (review of 7 Dec).
-- Fenced. The attempt counter stays (fences stay unique); max_attempts grows by one instead,
-- so a snooze uses up no attempt (River's way).
-- A job whose cancel a user requested ends cancelled instead (River's rule), with the history
-- entry ?5 (as a run stopped by the request has) saying why it ended.
UPDATE porter_jobs SET
    state        = CASE WHEN json_extract(CAST(metadata AS TEXT), '$.cancel_requested_at') IS NOT NULL THEN 'cancelled' ELSE 'scheduled' END,
    scheduled_at = CASE WHEN json_extract(CAST(metadata AS TEXT), '$.cancel_requested_at') IS NOT NULL THEN scheduled_at
                        ELSE strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(), ?4) END,
    finalized_at = CASE WHEN json_extract(CAST(metadata AS TEXT), '$.cancel_requested_at') IS NOT NULL THEN porter_now() END,
    max_attempts = CASE WHEN json_extract(CAST(metadata AS TEXT), '$.cancel_requested_at') IS NOT NULL THEN max_attempts ELSE max_attempts + 1 END,
    errors       = CASE WHEN json_extract(CAST(metadata AS TEXT), '$.cancel_requested_at') IS NOT NULL
                        THEN json_insert(CASE WHEN NOT json_valid(errors) THEN '[]' WHEN json_type(errors) = 'array' THEN errors ELSE '[]' END, '$[#]',
                                         json_object('attempt', attempt, 'at', porter_now(), 'error', ?5))
                        ELSE errors END
WHERE id = ?1 AND state = 'running' AND attempt = ?2 AND attempted_by = ?3
RETURNING *
