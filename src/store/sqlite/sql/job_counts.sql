-- Jobs per queue and state, one part per index that holds a group of states (migration 0041):
-- porter_jobs_fetch (available), porter_jobs_running_key (running), porter_jobs_pending,
-- porter_jobs_due (scheduled, retryable), porter_jobs_finalized (the finished states, `queue`
-- in its key). Every part but the due one reads its index alone; no part reads the whole
-- table, which is mostly finished jobs kept for retention. The state CHECK allows these eight
-- states only.
SELECT queue, 'available', count(*) FROM porter_jobs WHERE state = 'available' GROUP BY queue
UNION ALL
SELECT queue, 'running', count(*) FROM porter_jobs WHERE state = 'running' GROUP BY queue
UNION ALL
SELECT queue, 'pending', count(*) FROM porter_jobs WHERE state = 'pending' GROUP BY queue
UNION ALL
SELECT queue, state, count(*) FROM porter_jobs WHERE state IN ('scheduled','retryable')
GROUP BY queue, state
UNION ALL
SELECT queue, state, count(*) FROM porter_jobs WHERE state IN ('completed','cancelled','discarded')
GROUP BY queue, state
