-- Fenced. The attempt counter stays (fences stay unique); max_attempts grows by one instead,
-- so a snooze uses up no attempt (River's way). $4 is the delay in seconds.
UPDATE porter_jobs SET
    state = 'scheduled',
    scheduled_at = porter_now() + $4::float8 * interval '1 second',
    max_attempts = max_attempts + 1
WHERE id = $1 AND state = 'running' AND attempt = $2 AND attempted_by = $3
RETURNING *
