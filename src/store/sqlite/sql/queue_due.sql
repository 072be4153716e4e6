-- Per queue, the jobs due to run: available ones, and scheduled/retryable ones whose time has
-- come (a producer promotes those at its next claim). Times are ISO-8601 text of one width,
-- so min() is the earliest. A time in another format or type (another program's plain INSERT) is
-- counted but left out of the earliest, which is now when no other is due.
SELECT queue, count(*),
       coalesce(min(CASE WHEN typeof(scheduled_at) = 'text' AND scheduled_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z'
                         THEN scheduled_at END),
                porter_now())
FROM porter_jobs
WHERE state = 'available'
   OR (state IN ('scheduled','retryable') AND scheduled_at <= porter_now())
GROUP BY queue
