-- Attempts given back unstarted before 0044 marked them: the entry of each such attempt of a
-- child that has not run yet gets the mark `"unstarted": true`, so that a retry of its parent
-- makes it wait again, as for a child given back since (0044 alone left such children looking
-- started). They are the entries with the producer's own text (`GIVEN_BACK`,
-- src/runtime/producer.rs), in jobs with parents that are due or waiting and have been
-- claimed; an entry already marked either way is left as it is.
UPDATE porter_jobs j SET errors = (
    SELECT jsonb_agg(CASE WHEN jsonb_typeof(e) = 'object' AND e ->> 'error' = 'claimed ahead of a free slot; given back unstarted'
                               AND NOT e ? 'unstarted'
                          THEN e || '{"unstarted": true}'::jsonb ELSE e END ORDER BY n)
    FROM jsonb_array_elements(j.errors) WITH ORDINALITY AS t(e, n))
WHERE j.state IN ('available', 'scheduled', 'pending') AND j.attempt > 0
  AND jsonb_typeof(j.errors) = 'array'
  AND j.errors @> '[{"error": "claimed ahead of a free slot; given back unstarted"}]'::jsonb
  AND EXISTS (SELECT 1 FROM porter_job_deps d WHERE d.child_id = j.id);
