-- porter bench's minimal baseline only: a batch of completions fenced on the attempt.
UPDATE porter_bench_minimal m SET state = 2
FROM unnest($1::bigint[], $2::int[]) AS f(id, attempt)
WHERE m.id = f.id AND m.state = 1 AND m.attempt = f.attempt
