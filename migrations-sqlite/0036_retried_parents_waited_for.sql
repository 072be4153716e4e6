-- A parent an admin retries after it ended is waited for again by the children still waiting
-- for it. Before, that end's count stood (porter_jobs_reopened resolved every edge of the
-- parent): a parent that completed, was retried and then ended discarded let its child run,
-- and a batch member retried after it ended let the batch's on_complete callback become due
-- before the member's new end, with counts short of the batch (its on_success callback ran
-- although the member then failed). Now a waiting child's count goes back up and its edge
-- stays unresolved, so the parent's next end counts; only the edges of children that no longer
-- wait (they ran, or the end cancelled them) are resolved, and the parent's next end leaves
-- them alone. (job_retry_edges.sql reopens every edge of a child a retry makes wait, for the
-- same reason.) Same change on PostgreSQL: migrations-postgres/0036_retried_parents_waited_for.sql.
DROP TRIGGER porter_jobs_reopened;
CREATE TRIGGER porter_jobs_reopened AFTER UPDATE OF state ON porter_jobs
WHEN NEW.has_dependents AND (OLD.state = 'completed' OR OLD.state = 'cancelled' OR OLD.state = 'discarded')
 AND (NEW.state <> 'completed' AND NEW.state <> 'cancelled' AND NEW.state <> 'discarded')
BEGIN
    UPDATE porter_jobs SET waiting_for = waiting_for + 1
    WHERE +state = 'pending'
      AND id IN (SELECT child_id FROM porter_job_deps WHERE parent_id = NEW.id AND NOT resolved);
    UPDATE porter_job_deps SET resolved = 1
    WHERE parent_id = NEW.id AND NOT resolved
      AND NOT EXISTS (SELECT 1 FROM porter_jobs c WHERE c.id = porter_job_deps.child_id AND +c.state = 'pending');
END;

-- Waiting jobs of an existing database: every edge unresolved, as they are written from now on.
-- An edge to a parent that had ended when the job was inserted was written resolved; one to a
-- parent that has not ended was resolved by a retry of that parent while the job waited, whose
-- earlier end then stood for the job: the job waits for that parent's end again.
UPDATE porter_jobs SET waiting_for = waiting_for + (
        SELECT count(*) FROM porter_job_deps d JOIN porter_jobs p ON p.id = d.parent_id
        WHERE d.child_id = porter_jobs.id AND d.resolved
          AND p.state NOT IN ('completed','cancelled','discarded'))
WHERE state = 'pending';
UPDATE porter_job_deps SET resolved = 0
WHERE resolved AND child_id IN (SELECT id FROM porter_jobs WHERE state = 'pending');
