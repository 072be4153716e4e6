-- 0046's marking again, for the give-backs from before 0044 that 0046 passed by on one backend
-- or both (migrations-sqlite/0047_given_back_marks_beside_entries_that_are_not_objects.sql
-- does the same on SQLite, whose 0046 also passed by histories holding entries that are not
-- objects): those of children that were claimed when 0046 ran and have been given back or
-- put back since. Such a child's later give-back is marked, its earlier one not, so it looked
-- started on PostgreSQL and, after SQLite's 0047, not on SQLite. An entry already marked either
-- way is left as it is.
UPDATE porter_jobs j SET errors = (
    SELECT jsonb_agg(CASE WHEN jsonb_typeof(e) = 'object' AND e ->> 'error' = 'claimed ahead of a free slot; given back unstarted'
                               AND NOT e ? 'unstarted'
                          THEN e || '{"unstarted": true}'::jsonb ELSE e END ORDER BY n)
    FROM jsonb_array_elements(j.errors) WITH ORDINALITY AS t(e, n))
WHERE j.state IN ('available', 'scheduled', 'pending') AND j.attempt > 0
  AND jsonb_typeof(j.errors) = 'array'
  AND j.errors @> '[{"error": "claimed ahead of a free slot; given back unstarted"}]'::jsonb
  AND EXISTS (SELECT 1 FROM jsonb_array_elements(j.errors) e
              WHERE jsonb_typeof(e) = 'object' AND e ->> 'error' = 'claimed ahead of a free slot; given back unstarted'
                AND NOT e ? 'unstarted')
  AND EXISTS (SELECT 1 FROM porter_job_deps d WHERE d.child_id = j.id);
