-- porter bench --workflow's hand-written baseline only: $2 chains of the jobs of $1 in one
-- statement; job i (from 1) waits for job i - $2, the one before it in its chain.
INSERT INTO porter_bench_chains (id, state, after, args)
SELECT i, CASE WHEN i <= $2 THEN 0 ELSE 3 END, CASE WHEN i > $2 THEN i - $2 END, a
FROM unnest($1::jsonb[]) WITH ORDINALITY AS t(a, i)
