-- Fenced: a running job cancels itself, keeping the reason in its history.
UPDATE porter_jobs SET
    state = 'cancelled',
    finalized_at = porter_now(),
    errors = json_insert(CASE WHEN NOT json_valid(errors) THEN '[]' WHEN json_type(errors) = 'array' THEN errors ELSE '[]' END, '$[#]', json_object('attempt', attempt, 'at', porter_now(), 'error', ?4))
WHERE id = ?1 AND state = 'running' AND attempt = ?2 AND attempted_by = ?3
RETURNING *
