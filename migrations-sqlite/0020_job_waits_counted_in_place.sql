-- A parent's end that leaves its child waiting writes only the child's count (issue 16's 2x
-- target). 0017's trigger (0012's before it) counted a parent's end with one update that also
-- set the child's state (to itself while other parents remain): SQLite decides which indexes an
-- update rewrites by the columns it sets, not by whether their values change, so each such end
-- rewrote the child's entries in every index on `state` (seven, most of them partial) and fired
-- the triggers on `state`. A fan-in step of 10,000 parents paid that 9,999 times: 24 us against
-- 4.5 us per end, measured. Now the child that its parent frees is promoted first (count 1 ->
-- 0, state set), then the children still waiting for others have their count lowered, without
-- touching `state`; the promoted ones are no longer pending, so the second statement does not
-- count them twice. Otherwise this is 0017's trigger. Nothing changes on PostgreSQL (its
-- migration 0020 is a comment): its statement trigger updates children by primary key, and an
-- update that leaves indexed values as they were can stay a heap-only tuple there.
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
    SET waiting_for = 0,
        state = CASE WHEN scheduled_at <= porter_now() THEN 'available' ELSE 'scheduled' END
    WHERE +state = 'pending' AND waiting_for = 1
      AND id IN (SELECT child_id FROM porter_job_deps
                 WHERE parent_id = NEW.id AND NOT resolved AND (NEW.state = 'completed' OR after_any));

    UPDATE porter_jobs
    SET waiting_for = waiting_for - 1
    WHERE +state = 'pending' AND waiting_for > 1
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
