-- Fenced: only the running attempt of the worker that claimed it can complete it.
UPDATE porter_jobs SET state = 'completed', finalized_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')
WHERE id = ?1 AND state = 'running' AND attempt = ?2 AND attempted_by = ?3
