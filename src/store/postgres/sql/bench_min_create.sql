-- porter bench's minimal baseline only: the least a job queue can be. One table and one
-- index, a partial one, so finished rows leave it. Dropped again after the run.
DROP TABLE IF EXISTS porter_bench_minimal;
CREATE TABLE porter_bench_minimal (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    state smallint NOT NULL DEFAULT 0, -- 0 waiting, 1 running, 2 done
    attempt integer NOT NULL DEFAULT 0,
    args jsonb NOT NULL
);
CREATE INDEX porter_bench_minimal_waiting ON porter_bench_minimal (id) WHERE state = 0;
