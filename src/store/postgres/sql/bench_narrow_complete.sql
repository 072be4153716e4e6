-- porter bench's narrow baseline only: bench_raw_complete.sql on the narrow table.
UPDATE porter_bench_narrow j SET state = 2, finalized_at = now()
FROM unnest($1::bigint[], $2::int[]) AS f(id, attempt)
WHERE j.id = f.id AND j.state = 1 AND j.attempt = f.attempt AND j.attempted_by = $3
