-- porter bench's narrow baseline only: leaves nothing behind.
DROP TABLE IF EXISTS porter_bench_narrow
