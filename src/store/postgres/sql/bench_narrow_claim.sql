-- porter bench's narrow baseline only: bench_raw_claim.sql on the narrow table.
WITH picked AS (
    SELECT id FROM porter_bench_narrow
    WHERE state = 0 AND queue = $1
    ORDER BY priority, scheduled_at, id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE porter_bench_narrow j
SET state = 1, attempt = j.attempt + 1, attempted_at = now(), attempted_by = $2
FROM picked
WHERE j.id = picked.id
RETURNING j.id, j.attempt
