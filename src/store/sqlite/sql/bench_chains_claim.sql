-- porter bench --workflow's hand-written baseline only: bench_min_claim.sql on the chains'
-- table.
UPDATE porter_bench_chains SET state = 1, attempt = attempt + 1
WHERE id IN (SELECT id FROM porter_bench_chains WHERE state = 0 ORDER BY id LIMIT ?1)
RETURNING id, attempt
