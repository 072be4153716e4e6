-- porter bench's narrow baseline only: the least a table can hold and still do what porter's
-- claim and completion do (a queue, a kind, a priority and a due time to claim in order, the
-- attempt and the claiming worker to fence with, when each claim and end happened, the args),
-- and the three indexes a queue cannot do without: claimable jobs in claim order, running jobs
-- by worker (rescue), ended jobs by time (retention). Each is partial, so a job is in one of
-- them at a time. What this table drains beside porter's own (bench_raw_*.sql, the same
-- statements) is what a narrower hot table could gain. Dropped again after the run.
DROP TABLE IF EXISTS porter_bench_narrow;
CREATE TABLE porter_bench_narrow (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue text NOT NULL,
    kind text NOT NULL,
    state smallint NOT NULL DEFAULT 0, -- 0 available, 1 running, 2 completed
    priority smallint NOT NULL DEFAULT 1,
    scheduled_at timestamptz NOT NULL DEFAULT now(),
    attempt integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 25,
    attempted_at timestamptz,
    attempted_by text,
    finalized_at timestamptz,
    args jsonb NOT NULL
);
CREATE INDEX porter_bench_narrow_fetch ON porter_bench_narrow (queue, priority, scheduled_at, id) WHERE state = 0;
CREATE INDEX porter_bench_narrow_running ON porter_bench_narrow (attempted_by) WHERE state = 1;
CREATE INDEX porter_bench_narrow_finalized ON porter_bench_narrow (finalized_at) WHERE state = 2;
