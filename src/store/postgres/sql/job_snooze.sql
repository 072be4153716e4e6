-- Fenced. The attempt counter stays (fences stay unique); max_attempts grows by one instead,
-- so a snooze uses up no attempt (River's way). $4 is the delay in seconds.
-- A job whose cancel a user requested ends cancelled instead (River's rule).
UPDATE porter_jobs SET
    state        = CASE WHEN metadata ? 'cancel_requested_at' THEN 'cancelled' ELSE 'scheduled' END,
    scheduled_at = CASE WHEN metadata ? 'cancel_requested_at' THEN scheduled_at
                        ELSE porter_now() + $4::float8 * interval '1 second' END,
    finalized_at = CASE WHEN metadata ? 'cancel_requested_at' THEN porter_now() END,
    max_attempts = CASE WHEN metadata ? 'cancel_requested_at' THEN max_attempts ELSE max_attempts + 1 END
-- By primary key only (see job_complete.sql on `COLLATE "C"`).
WHERE id = $1 AND state COLLATE "C" = 'running' AND attempt = $2 AND attempted_by = $3
RETURNING *
