-- porter bench --workflow's hand-written baseline only: leaves nothing behind.
DROP TABLE IF EXISTS porter_bench_chains;
