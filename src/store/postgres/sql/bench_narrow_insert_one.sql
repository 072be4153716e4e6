-- porter bench's narrow baseline only: bench_raw_insert_one.sql on the narrow table.
INSERT INTO porter_bench_narrow (kind, queue, args) VALUES ('noop', $1, '{}')
