-- porter bench's minimal baseline only: claim ?1 jobs, oldest first.
UPDATE porter_bench_minimal SET state = 1, attempt = attempt + 1
WHERE id IN (SELECT id FROM porter_bench_minimal WHERE state = 0 ORDER BY id LIMIT ?1)
RETURNING id, attempt
