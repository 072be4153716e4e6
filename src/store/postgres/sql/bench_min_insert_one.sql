-- porter bench's minimal baseline only: one bare job (its own transaction).
INSERT INTO porter_bench_minimal (args) VALUES ('{}')
