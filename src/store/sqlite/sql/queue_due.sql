-- Per queue, the jobs due to run: available ones, and scheduled/retryable ones whose time has
-- come (a producer promotes those at its next claim). Times are ISO-8601 text of one width,
-- so min() is the earliest. A time in another format or type (another program's plain INSERT) is
-- counted but left out of the earliest, which is now when no other is due.
-- The two groups are read as two parts, each from its index (porter_jobs_fetch, porter_jobs_due):
-- as one OR, SQLite reads two indexes only where each side constrains an indexed column, and
-- since 0041 no index has `state` in its key, so the OR scanned the table. Differs from
-- PostgreSQL, whose bitmap OR reads both indexes for the OR as written.
SELECT queue, count(*),
       coalesce(min(CASE WHEN typeof(scheduled_at) = 'text' AND scheduled_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z'
                         THEN scheduled_at END),
                porter_now())
FROM (SELECT queue, scheduled_at FROM porter_jobs WHERE state = 'available'
      UNION ALL
      SELECT queue, scheduled_at FROM porter_jobs
      WHERE state IN ('scheduled','retryable') AND scheduled_at <= porter_now())
GROUP BY queue
