-- porter bench's minimal baseline only: a completion fenced on the attempt.
UPDATE porter_bench_minimal SET state = 2 WHERE id = ?1 AND state = 1 AND attempt = ?2
