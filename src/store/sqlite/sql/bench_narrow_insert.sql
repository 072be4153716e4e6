-- porter bench's narrow baseline only: bench_raw_insert.sql on the narrow table.
INSERT INTO porter_bench_narrow (kind, queue, args) VALUES ('noop', ?1, '{}')
