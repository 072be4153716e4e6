-- A completion batch counts its parents' ends once per batch (issue 16's chains), not once per
-- completed parent: porter's completion statement runs with `porter_ends_counted()` true, so
-- `porter_jobs_finalized` skips the parents it completes, and then one statement frees the
-- children that waited for those parents alone and one lowers the count of the others (see
-- `job_complete_children_free.sql`, `job_complete_children_count.sql`). A trigger program
-- opens `porter_jobs` and its indexes for every row that passes its WHEN; the two statements
-- open them once per batch. Every other write (a failure, a cancel, a retry, an operator's
-- own UPDATE) still counts in the trigger, which is otherwise unchanged from 0025.
DROP TRIGGER porter_jobs_finalized;

CREATE TRIGGER porter_jobs_finalized AFTER UPDATE OF state ON porter_jobs
WHEN NEW.has_dependents
 AND (NEW.state = 'completed' OR NEW.state = 'cancelled' OR NEW.state = 'discarded')
 AND (OLD.state <> 'completed' AND OLD.state <> 'cancelled' AND OLD.state <> 'discarded')
 AND NOT porter_ends_counted()
BEGIN
    UPDATE porter_jobs
    SET waiting_for = 0,
        state = CASE WHEN scheduled_at <= porter_now() THEN 'available' ELSE 'scheduled' END
    FROM porter_job_deps d
    WHERE d.parent_id = NEW.id AND NOT d.resolved AND (NEW.state = 'completed' OR d.after_any)
      AND porter_jobs.id = d.child_id AND +porter_jobs.state = 'pending' AND porter_jobs.waiting_for = 1;

    UPDATE porter_jobs
    SET waiting_for = waiting_for - 1
    FROM porter_job_deps d
    WHERE d.parent_id = NEW.id AND NOT d.resolved AND (NEW.state = 'completed' OR d.after_any)
      AND porter_jobs.id = d.child_id AND +porter_jobs.state = 'pending' AND porter_jobs.waiting_for > 1;
END;
