-- A user cancels an unfinished job. A running one's worker is then fenced off.
UPDATE porter_jobs SET state = 'cancelled', finalized_at = porter_now()
WHERE id = $1 AND state IN ('available','scheduled','running','retryable')
RETURNING *
