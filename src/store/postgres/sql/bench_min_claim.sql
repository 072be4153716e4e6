-- porter bench's minimal baseline only: claim $1 jobs, oldest first; SKIP LOCKED lets the
-- baseline's connections claim side by side.
WITH picked AS (
    SELECT id FROM porter_bench_minimal WHERE state = 0 ORDER BY id LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE porter_bench_minimal m SET state = 1, attempt = m.attempt + 1
FROM picked WHERE m.id = picked.id
RETURNING m.id, m.attempt
