-- porter bench --workflow's hand-written baseline only: job ?1 (from 1) of ?2 chains; it
-- waits for job ?1 - ?2, the one before it in its chain.
INSERT INTO porter_bench_chains (id, state, after, args)
VALUES (?1, CASE WHEN ?1 <= ?2 THEN 0 ELSE 3 END, CASE WHEN ?1 > ?2 THEN ?1 - ?2 END, '{}')
