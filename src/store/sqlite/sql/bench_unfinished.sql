-- porter bench: a queue's jobs still to do (waiting for their parents, available or running),
-- never a table scan, so polling it costs little while a drain runs: one count per index of
-- those states (porter_jobs_pending, porter_jobs_fetch, porter_jobs_running_key, each with
-- `queue` first), since no index has all three since migration 0041.
SELECT (SELECT count(*) FROM porter_jobs WHERE state = 'pending' AND queue = ?1)
     + (SELECT count(*) FROM porter_jobs WHERE state = 'available' AND queue = ?1)
     + (SELECT count(*) FROM porter_jobs WHERE state = 'running' AND queue = ?1)
