-- Jobs finished per minute since ?1 (porter_jobs_finalized serves it). Times are stored as
-- 'YYYY-MM-DDTHH:MM:SS.mmmZ' text: the first 16 characters are the minute.
SELECT substr(finalized_at, 1, 16) || ':00.000Z' AS minute,
       sum(state = 'completed'), sum(state = 'discarded')
FROM porter_jobs
WHERE state IN ('completed', 'discarded') AND finalized_at >= ?1
GROUP BY minute
ORDER BY minute
