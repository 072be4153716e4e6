-- A child counts as not started when each of its attempts was given back before its handler
-- ran (the release of a job claimed ahead of a free slot marks its history's entry
-- `"unstarted": true`), not only when it was never claimed, as on PostgreSQL
-- (migrations-postgres/0044_given_back_children_wait_again.sql). A give-back keeps the attempt
-- count, so a child claimed ahead and given back unstarted looked started: a parent retried
-- after that was not waited for, and the child ran beside, or before, its parent's new run.
-- The trigger of 0039 again, with that one change.
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
                     WHERE CASE WHEN e.type = 'object' THEN json_extract(e.value, '$.unstarted') END IS 1)
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
