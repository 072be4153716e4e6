-- porter bench's minimal baseline only: one bare job.
INSERT INTO porter_bench_minimal (args) VALUES ('{}')
