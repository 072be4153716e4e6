-- Jobs per queue and state, one part per index that holds a group of states (migration 0041):
-- porter_jobs_fetch (available), porter_jobs_running_key (running), porter_jobs_pending,
-- porter_jobs_due (scheduled, retryable), porter_jobs_finalized (the finished states). No part
-- reads the whole table, which is mostly finished jobs kept for retention. The state CHECK
-- allows these eight states only. Each part repeats its index's list of states: SQLite takes
-- a partial index only where a term of the WHERE is its predicate (or a side of its OR).
-- No part sorts its jobs either: SQLite groups by sorting, and with temp_store=MEMORY a sort
-- of every finished job (`GROUP BY queue, state` over porter_jobs_finalized, whose key is
-- (state, finalized_at, queue)) held them all in memory: 125 MB with 2,000,000 kept. Each part
-- groups along its index's order (`queue` first), and the finished jobs are counted per state
-- and queue from the distinct queues (a sort of names only), each count a walk of that state's
-- entries in porter_jobs_finalized, which holds `queue`.
WITH finished_queues AS (
    SELECT DISTINCT queue FROM porter_jobs WHERE state IN ('completed','cancelled','discarded')
),
finished AS MATERIALIZED (
    SELECT f.queue, 'completed' AS state,
           (SELECT count(*) FROM porter_jobs j WHERE j.state IN ('completed','cancelled','discarded')
                AND j.state = 'completed' AND j.queue = f.queue) AS n
    FROM finished_queues f
    UNION ALL
    SELECT f.queue, 'cancelled',
           (SELECT count(*) FROM porter_jobs j WHERE j.state IN ('completed','cancelled','discarded')
                AND j.state = 'cancelled' AND j.queue = f.queue)
    FROM finished_queues f
    UNION ALL
    SELECT f.queue, 'discarded',
           (SELECT count(*) FROM porter_jobs j WHERE j.state IN ('completed','cancelled','discarded')
                AND j.state = 'discarded' AND j.queue = f.queue)
    FROM finished_queues f
)
SELECT queue, 'available', count(*) FROM porter_jobs WHERE state = 'available' GROUP BY queue
UNION ALL
SELECT queue, 'running', count(*) FROM porter_jobs WHERE state = 'running' GROUP BY queue
UNION ALL
SELECT queue, 'pending', count(*) FROM porter_jobs WHERE state = 'pending' GROUP BY queue
UNION ALL
SELECT queue, 'scheduled', count(*) FROM porter_jobs
WHERE state IN ('scheduled','retryable') AND state = 'scheduled' GROUP BY queue
UNION ALL
SELECT queue, 'retryable', count(*) FROM porter_jobs
WHERE state IN ('scheduled','retryable') AND state = 'retryable' GROUP BY queue
UNION ALL
SELECT queue, state, n FROM finished WHERE n > 0
