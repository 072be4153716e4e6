-- porter bench --workflow's hand-written baseline only: a completion fenced on the attempt
-- (bench_chains_release.sql then makes the jobs that waited for it claimable).
UPDATE porter_bench_chains SET state = 2 WHERE id = ?1 AND state = 1 AND attempt = ?2
