-- porter bench --workflow's hand-written baseline only: bench_min_claim.sql on the chains'
-- table.
WITH picked AS (
    SELECT id FROM porter_bench_chains WHERE state = 0 ORDER BY id LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE porter_bench_chains m SET state = 1, attempt = m.attempt + 1
FROM picked WHERE m.id = picked.id
RETURNING m.id, m.attempt
