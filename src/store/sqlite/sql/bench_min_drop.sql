-- porter bench's minimal baseline only: leaves nothing behind.
DROP TABLE IF EXISTS porter_bench_minimal
