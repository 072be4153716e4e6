-- Jobs finished per minute since $1 (porter_jobs_finalized serves it). The minute is cut in
-- UTC, as SQLite's text times are.
SELECT date_trunc('minute', finalized_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS minute,
       count(*) FILTER (WHERE state = 'completed'), count(*) FILTER (WHERE state = 'discarded')
FROM porter_jobs
WHERE state IN ('completed', 'discarded') AND finalized_at >= $1
GROUP BY 1
ORDER BY 1
