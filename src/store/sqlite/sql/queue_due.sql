-- Per queue, the jobs due to run: available ones, and scheduled/retryable ones whose time has
-- come (a producer promotes those at its next claim). Times are ISO-8601 text of one width,
-- so min() is the earliest. A time in another format or type (another program's plain INSERT) is
-- counted but left out of the earliest, which is now when no other is due (the fourth column:
-- also when the earliest has the shape of a time but is none, such as February 30).
-- Each part groups along its index's order (`queue` first) and the outer query adds the few
-- rows per queue: SQLite groups by sorting, and a GROUP BY over the two parts joined sorted
-- every due job, in memory under temp_store=MEMORY (80 MB with 1,000,000 available).
-- The two groups are read as two parts, each from its index (porter_jobs_fetch, porter_jobs_due):
-- as one OR, SQLite reads two indexes only where each side constrains an indexed column, and
-- since 0041 no index has `state` in its key, so the OR scanned the table. Differs from
-- PostgreSQL, whose bitmap OR reads both indexes for the OR as written.
SELECT queue, sum(n), coalesce(min(earliest), porter_now()), porter_now()
FROM (SELECT queue, count(*) AS n,
             min(CASE WHEN typeof(scheduled_at) = 'text' AND scheduled_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z'
                THEN scheduled_at END) AS earliest
      FROM porter_jobs WHERE state = 'available' GROUP BY queue
      UNION ALL
      SELECT queue, count(*),
             min(CASE WHEN typeof(scheduled_at) = 'text' AND scheduled_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z'
                THEN scheduled_at END)
      FROM porter_jobs
      WHERE state IN ('scheduled','retryable') AND scheduled_at <= porter_now() GROUP BY queue)
GROUP BY queue
