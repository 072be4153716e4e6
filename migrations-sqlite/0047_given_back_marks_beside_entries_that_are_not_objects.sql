-- 0046's marking again, for the give-backs from before 0044 that 0046 passed by (PostgreSQL's
-- 0047 does the same there):
-- * SQLite's 0046 passed by every history holding an entry that is not an object (a string, a
--   number, true, false, null or an array, which only another program writes and porter's
--   reader cannot read), where PostgreSQL's marked the give-backs in it;
-- * on both, the give-backs of children that were claimed when 0046 ran and have been given
--   back or put back since: such a child's later give-back is marked, its earlier one not.
-- Every entry but an unmarked give-back is kept as it was: objects and arrays as their JSON
-- text, true, false and null as themselves (a value of json_each reads true as 1), strings
-- and numbers as the element's own JSON text (`->`: a string that reads as JSON stays a
-- string; `->` walks the history again, so only for these, which porter never writes).
UPDATE porter_jobs SET errors = (
    SELECT json_group_array(json(x)) FROM (
        SELECT CASE WHEN e.type = 'object'
                         AND json_extract(e.value, '$.error') = 'claimed ahead of a free slot; given back unstarted'
                         AND json_type(e.value, '$.unstarted') IS NULL
                    THEN json_set(e.value, '$.unstarted', json('true'))
                    WHEN e.type IN ('object', 'array') THEN e.value
                    WHEN e.type IN ('true', 'false', 'null') THEN e.type
                    ELSE porter_jobs.errors -> e.fullkey END AS x
        FROM json_each(porter_jobs.errors) e ORDER BY e.key))
WHERE state IN ('available', 'scheduled', 'pending') AND attempt > 0
  AND json_valid(errors) AND json_type(errors) = 'array'
  AND EXISTS (SELECT 1 FROM json_each(porter_jobs.errors) e
              WHERE e.type = 'object'
                AND json_extract(e.value, '$.error') = 'claimed ahead of a free slot; given back unstarted'
                AND json_type(e.value, '$.unstarted') IS NULL)
  AND EXISTS (SELECT 1 FROM porter_job_deps d WHERE d.child_id = porter_jobs.id);
