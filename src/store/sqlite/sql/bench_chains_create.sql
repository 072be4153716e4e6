-- porter bench --workflow's hand-written baseline only: the minimal table
-- (bench_min_create.sql) with one column more, the job each job waits for, and a second
-- partial index to find a finished job's waiting children. Dropped again after the run.
DROP TABLE IF EXISTS porter_bench_chains;
CREATE TABLE porter_bench_chains (
    id INTEGER PRIMARY KEY,
    state INTEGER NOT NULL, -- 0 claimable, 1 running, 2 done, 3 waiting for `after`
    attempt INTEGER NOT NULL DEFAULT 0,
    after INTEGER,
    args TEXT NOT NULL
);
CREATE INDEX porter_bench_chains_ready ON porter_bench_chains (id) WHERE state = 0;
CREATE INDEX porter_bench_chains_waiting ON porter_bench_chains (after) WHERE state = 3;
