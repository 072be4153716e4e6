-- porter_jobs_parent_failed (0025) again, with one change: the entry it adds to a waiting
-- child's history is appended to an array even when another program wrote something else
-- there. json_insert fails on invalid JSON, and that failed the parent's own write (its final
-- failure, its cancel, its rescue), so the parent could never end; a rescue pass that picked
-- it failed whole, for every queue. porter reads such a history as an entry that says so
-- (crate::store::errors_read), and the other appends start it over the same way (job_fail.sql).
DROP TRIGGER porter_jobs_parent_failed;
CREATE TRIGGER porter_jobs_parent_failed AFTER UPDATE OF state ON porter_jobs
WHEN NEW.has_dependents AND (NEW.state = 'cancelled' OR NEW.state = 'discarded')
 AND (OLD.state <> 'completed' AND OLD.state <> 'cancelled' AND OLD.state <> 'discarded')
BEGIN
    UPDATE porter_jobs
    SET state = 'cancelled',
        finalized_at = porter_now(),
        errors = json_insert(CASE WHEN NOT json_valid(errors) THEN '[]'
                                  WHEN json_type(errors) = 'array' THEN errors ELSE '[]' END,
                 '$[#]', json_object('attempt', attempt, 'at', porter_now(),
                 'error', 'parent job ' || NEW.id || ' was ' || NEW.state))
    WHERE +state = 'pending'
      AND id IN (SELECT child_id FROM porter_job_deps
                 WHERE parent_id = NEW.id AND NOT resolved AND NOT after_any);
END;
