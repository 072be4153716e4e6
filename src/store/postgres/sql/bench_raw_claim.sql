-- porter bench's baseline only: a hand-written claim of $3 jobs, run with the completions of
-- the same jobs in one transaction (no promotion, no pause or kind check). SKIP LOCKED lets
-- the baseline's connections claim side by side, as porter's producers do.
WITH picked AS (
    SELECT id FROM porter_jobs
    WHERE state = 'available' AND queue = $1
    ORDER BY priority, scheduled_at, id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE porter_jobs j
SET state = 'running', attempt = j.attempt + 1, attempted_at = now(), attempted_by = $2
FROM picked
WHERE j.id = picked.id
RETURNING j.id, j.attempt
