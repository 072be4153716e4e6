-- What `resolved` records changes as on PostgreSQL (migrations-postgres/0017_job_deps_counted_at_end.sql):
-- an edge is no longer marked when its parent ends, only when its parent leaves an end (a
-- retry), so that its next end counts only the children inserted since. An edge waits on its
-- parent exactly when it is unresolved and the parent has not ended; rows written before mean
-- the same, and rows copied from PostgreSQL (porter copy) too. Here this saves the one
-- statement per ended parent that marked its edges.
--
-- 0012's trigger, without that last statement. It fires only when a job enters an end, so an
-- ended parent's unresolved edges are counted once per end.
DROP TRIGGER porter_jobs_finalized;
CREATE TRIGGER porter_jobs_finalized AFTER UPDATE OF state ON porter_jobs
WHEN NEW.state IN ('completed','cancelled','discarded')
 AND OLD.state NOT IN ('completed','cancelled','discarded')
 AND (NEW.sequence_key IS NOT NULL OR NEW.has_dependents)
BEGIN
    UPDATE porter_jobs
    SET state = CASE WHEN scheduled_at <= porter_now() THEN 'available' ELSE 'scheduled' END
    WHERE NEW.sequence_key IS NOT NULL AND OLD.state <> 'pending'
      AND id = (SELECT min(id) FROM porter_jobs WHERE sequence_key = NEW.sequence_key AND state = 'pending')
      AND NOT EXISTS (SELECT 1 FROM porter_jobs WHERE sequence_key = NEW.sequence_key
                      AND state IN ('available','scheduled','running','retryable'));

    UPDATE porter_jobs
    SET waiting_for = waiting_for - 1,
        state = CASE WHEN waiting_for = 1
                     THEN CASE WHEN scheduled_at <= porter_now() THEN 'available' ELSE 'scheduled' END
                     ELSE state END
    WHERE +state = 'pending'
      AND id IN (SELECT child_id FROM porter_job_deps
                 WHERE parent_id = NEW.id AND NOT resolved AND (NEW.state = 'completed' OR after_any));

    UPDATE porter_jobs
    SET state = 'cancelled',
        finalized_at = porter_now(),
        errors = json_insert(errors, '$[#]', json_object('attempt', attempt, 'at', porter_now(),
                 'error', 'parent job ' || NEW.id || ' was ' || NEW.state))
    WHERE +state = 'pending'
      AND id IN (SELECT child_id FROM porter_job_deps
                 WHERE parent_id = NEW.id AND NOT resolved AND NEW.state <> 'completed' AND NOT after_any);
END;

-- A parent leaving an end (retried): the children that end counted stay counted.
CREATE TRIGGER porter_jobs_reopened AFTER UPDATE OF state ON porter_jobs
WHEN OLD.state IN ('completed','cancelled','discarded')
 AND NEW.state NOT IN ('completed','cancelled','discarded')
 AND NEW.has_dependents
BEGIN
    UPDATE porter_job_deps SET resolved = 1 WHERE parent_id = NEW.id AND NOT resolved;
END;
