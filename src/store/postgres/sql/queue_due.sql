-- Per queue, the jobs due to run: available ones, and scheduled/retryable ones whose time has
-- come (a producer promotes those at its next claim).
SELECT queue, count(*), min(scheduled_at) FROM porter_jobs
WHERE state = 'available'
   OR (state IN ('scheduled','retryable') AND scheduled_at <= porter_now())
GROUP BY queue
