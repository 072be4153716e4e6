-- 0046 again for the histories it passed by: those holding an entry that is not an object
-- (a string, a number, true, false, null or an array, which only another program writes and
-- porter's reader cannot read). PostgreSQL's 0046 marked the give-back entries in such
-- histories and SQLite's did not, so the same upgraded child waited for its retried parent on
-- one backend only. Each entry other than an unmarked give-back is kept as the JSON text it was
-- (`->` gives an element's JSON text, so a string that reads as JSON stays a string, and true
-- stays true rather than 1); the histories 0046 marked already have no unmarked entry left.
UPDATE porter_jobs SET errors = (
    SELECT json_group_array(json(x)) FROM (
        SELECT CASE WHEN e.type = 'object'
                         AND json_extract(e.value, '$.error') = 'claimed ahead of a free slot; given back unstarted'
                         AND json_type(e.value, '$.unstarted') IS NULL
                    THEN json_set(e.value, '$.unstarted', json('true'))
                    ELSE porter_jobs.errors -> e.fullkey END AS x
        FROM json_each(porter_jobs.errors) e ORDER BY e.key))
WHERE state IN ('available', 'scheduled', 'pending') AND attempt > 0
  AND json_valid(errors) AND json_type(errors) = 'array'
  AND EXISTS (SELECT 1 FROM json_each(porter_jobs.errors) e
              WHERE e.type = 'object'
                AND json_extract(e.value, '$.error') = 'claimed ahead of a free slot; given back unstarted'
                AND json_type(e.value, '$.unstarted') IS NULL)
  AND EXISTS (SELECT 1 FROM porter_job_deps d WHERE d.child_id = porter_jobs.id);
