-- porter bench --workflow's hand-written baseline only: the jobs that waited for the
-- completed job ?1 become claimable.
UPDATE porter_bench_chains SET state = 0 WHERE after = ?1 AND state = 3
