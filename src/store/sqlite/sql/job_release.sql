-- Metadata is read as CAST(metadata AS TEXT): a BLOB holding JSON text (another program's,
-- through an SQLite before 3.45) is otherwise read as binary JSON (review of 7 Dec).
-- Fenced. A running job its own worker gives back (stopped by a shutdown, or found by the
-- worker's reconcile) is due again at once without using up an attempt: as in job_snooze, the
-- attempt counter stays (fences stay unique) and max_attempts grows by one. ?4 is the reason,
-- kept in the error history; ?5 whether the job may have started: when not (claimed ahead and
-- given back before its handler ran), its entry says `"unstarted": true`, by which a parent
-- retried later knows the child has not started and is waited for again (migration 0044). A
-- job whose cancel a user requested ends cancelled instead: the stop it asked for has happened,
-- and its entry says so (?6, "cancelled by user", then the give-back's reason in brackets:
-- until 8 Dec it gave the reason alone, and nothing showed that a user had cancelled the job).
UPDATE porter_jobs SET
    state        = CASE WHEN json_extract(CAST(metadata AS TEXT), '$.cancel_requested_at') IS NOT NULL THEN 'cancelled' ELSE 'available' END,
    scheduled_at = CASE WHEN json_extract(CAST(metadata AS TEXT), '$.cancel_requested_at') IS NOT NULL THEN scheduled_at
                        ELSE porter_now() END,
    finalized_at = CASE WHEN json_extract(CAST(metadata AS TEXT), '$.cancel_requested_at') IS NOT NULL THEN porter_now() END,
    max_attempts = CASE WHEN json_extract(CAST(metadata AS TEXT), '$.cancel_requested_at') IS NOT NULL THEN max_attempts ELSE max_attempts + 1 END,
    errors       = json_insert(CASE WHEN NOT json_valid(errors) THEN '[]' WHEN json_type(errors) = 'array' THEN errors ELSE '[]' END, '$[#]',
                       json_patch(json_object('attempt', attempt, 'at', porter_now(), 'error',
                                              CASE WHEN json_extract(CAST(metadata AS TEXT), '$.cancel_requested_at') IS NOT NULL THEN ?6 || ' (' || ?4 || ')' ELSE ?4 END),
                                  CASE WHEN ?5 THEN '{}' ELSE '{"unstarted": true}' END))
WHERE id = ?1 AND state = 'running' AND attempt = ?2 AND attempted_by = ?3
RETURNING *
