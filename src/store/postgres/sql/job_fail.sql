-- Fenced. $4 error, $5 trace or NULL, $6 retry delay in seconds, $7 discard now.
-- A failure of a job whose cancel a user requested ends it cancelled instead of retryable
-- (River's rule); a final failure stays discarded.
-- Unlike SQLite's json_object, a NULL trace is left out of the entry (jsonb_strip_nulls); both
-- read back as no trace.
UPDATE porter_jobs SET
    state        = CASE WHEN $7 OR attempt >= max_attempts THEN 'discarded'
                        WHEN metadata ? 'cancel_requested_at' THEN 'cancelled' ELSE 'retryable' END,
    scheduled_at = CASE WHEN $7 OR attempt >= max_attempts OR metadata ? 'cancel_requested_at' THEN scheduled_at
                        ELSE porter_now() + $6::float8 * interval '1 second' END,
    finalized_at = CASE WHEN $7 OR attempt >= max_attempts OR metadata ? 'cancel_requested_at' THEN porter_now() END,
    errors       = errors || jsonb_build_array(jsonb_strip_nulls(
                       jsonb_build_object('attempt', attempt, 'at', porter_now(), 'error', $4::text, 'trace', $5::text)))
WHERE id = $1 AND state = 'running' AND attempt = $2 AND attempted_by = $3
RETURNING *
