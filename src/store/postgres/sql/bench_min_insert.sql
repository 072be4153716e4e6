-- porter bench's minimal baseline only: a batch of bare jobs in one statement (UNNEST).
INSERT INTO porter_bench_minimal (args) SELECT a FROM unnest($1::jsonb[]) AS a
