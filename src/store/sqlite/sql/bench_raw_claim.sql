-- porter bench's baseline only: a hand-written claim of ?3 jobs, run with the completions of
-- the same jobs in one transaction (no promotion, no pause or kind check).
UPDATE porter_jobs
SET state = 'running', attempt = attempt + 1, attempted_at = strftime('%Y-%m-%dT%H:%M:%fZ','now'), attempted_by = ?2
WHERE id IN (
    SELECT id FROM porter_jobs
    WHERE state = 'available' AND queue = ?1
    ORDER BY priority, scheduled_at, id
    LIMIT ?3
)
RETURNING id, attempt
