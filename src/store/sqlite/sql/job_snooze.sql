-- Fenced. The attempt counter stays (fences stay unique); max_attempts grows by one instead,
-- so a snooze uses up no attempt (River's way).
UPDATE porter_jobs SET
    state = 'scheduled',
    scheduled_at = strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(), ?4),
    max_attempts = max_attempts + 1
WHERE id = ?1 AND state = 'running' AND attempt = ?2 AND attempted_by = ?3
RETURNING *
