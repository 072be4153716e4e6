-- porter bench: whether a queue has a job still to do; stops at the first entry it finds in
-- porter_jobs_fetch, porter_jobs_running_key or porter_jobs_pending (see
-- bench_unfinished.sql), so the drain can ask it every millisecond or so.
SELECT EXISTS (SELECT 1 FROM porter_jobs WHERE state = 'available' AND queue = $1)
    OR EXISTS (SELECT 1 FROM porter_jobs WHERE state = 'running' AND queue = $1)
    OR EXISTS (SELECT 1 FROM porter_jobs WHERE state = 'pending' AND queue = $1)
