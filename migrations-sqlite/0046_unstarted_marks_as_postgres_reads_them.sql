-- Two changes to 0044, to read the mark `"unstarted"` as PostgreSQL does:
-- * Only `true` counts. `json_extract(...) IS 1` also took `1` and `1.0`, which another
--   program may write (and porter's reader cannot read), where PostgreSQL takes `true` alone:
--   the same row made a child wait again on SQLite and not on PostgreSQL. The trigger of 0044
--   again, testing the mark's JSON type.
-- * Attempts given back unstarted before 0044 marked them: the entry of each such attempt of a
--   child that has not run yet gets the mark, so that a retry of its parent makes it wait
--   again, as for a child given back since (0044 alone left such children looking started).
--   They are the entries with the producer's own text (`GIVEN_BACK`,
--   src/runtime/producer.rs), in jobs with parents that are due or waiting and have been
--   claimed, whose history is an array of objects; an entry already marked is left as it is.
DROP TRIGGER porter_jobs_reopened;
CREATE TRIGGER porter_jobs_reopened AFTER UPDATE OF state ON porter_jobs
WHEN NEW.has_dependents AND (OLD.state = 'completed' OR OLD.state = 'cancelled' OR OLD.state = 'discarded')
 AND (NEW.state <> 'completed' AND NEW.state <> 'cancelled' AND NEW.state <> 'discarded')
BEGIN
    UPDATE porter_jobs SET state = 'pending', waiting_for = 0
    WHERE (+state = 'available' OR +state = 'scheduled')
      AND attempt = (SELECT count(*) FROM json_each(CASE WHEN NOT json_valid(porter_jobs.errors) THEN '[]'
                                                         WHEN json_type(porter_jobs.errors) = 'array' THEN porter_jobs.errors
                                                         ELSE '[]' END) e
                     WHERE CASE WHEN e.type = 'object' THEN json_type(e.value, '$.unstarted') END = 'true')
      AND id IN (SELECT child_id FROM porter_job_deps WHERE parent_id = NEW.id);
    UPDATE porter_jobs SET waiting_for = waiting_for + 1
    WHERE +state = 'pending'
      AND id IN (SELECT child_id FROM porter_job_deps WHERE parent_id = NEW.id);
    UPDATE porter_job_deps SET resolved = 0
    WHERE parent_id = NEW.id AND resolved
      AND EXISTS (SELECT 1 FROM porter_jobs c WHERE c.id = porter_job_deps.child_id AND +c.state = 'pending');
    UPDATE porter_job_deps SET resolved = 1
    WHERE parent_id = NEW.id AND NOT resolved
      AND NOT EXISTS (SELECT 1 FROM porter_jobs c WHERE c.id = porter_job_deps.child_id AND +c.state = 'pending');
END;

UPDATE porter_jobs SET errors = (
    SELECT json_group_array(json(x)) FROM (
        SELECT CASE WHEN json_extract(e.value, '$.error') = 'claimed ahead of a free slot; given back unstarted'
                         AND json_type(e.value, '$.unstarted') IS NULL
                    THEN json_set(e.value, '$.unstarted', json('true')) ELSE e.value END AS x
        FROM json_each(porter_jobs.errors) e ORDER BY e.key))
WHERE state IN ('available', 'scheduled', 'pending') AND attempt > 0
  AND json_valid(errors) AND json_type(errors) = 'array'
  AND NOT EXISTS (SELECT 1 FROM json_each(porter_jobs.errors) e WHERE e.type <> 'object')
  AND EXISTS (SELECT 1 FROM json_each(porter_jobs.errors) e
              WHERE CASE WHEN e.type = 'object' THEN json_extract(e.value, '$.error') END
                    = 'claimed ahead of a free slot; given back unstarted')
  AND EXISTS (SELECT 1 FROM porter_job_deps d WHERE d.child_id = porter_jobs.id);
