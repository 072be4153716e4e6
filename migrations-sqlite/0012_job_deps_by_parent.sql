-- Dependencies cost what the parent has, not what waits elsewhere (issue 16's 2x target).
-- Same meaning as migrations-postgres/0012_job_deps_by_parent.sql.
--
-- 1. Every edge by its parent. 0007's index held only unresolved edges, which neither the
--    ON DELETE CASCADE of a deleted parent (retention, workflow deletes) nor retention's "have
--    its children ended" can use: each deleted job scanned the whole edge table, so deleting a
--    10,000-step workflow took minutes. Unresolved edges are found through it as well.
DROP INDEX porter_job_deps_parent;
CREATE INDEX porter_job_deps_parent ON porter_job_deps (parent_id);

-- 2. 0007's trigger again, its children found by id. SQLite's planner read `state =
--    'pending'` through porter_jobs_fetch and tested each waiting job against the parent's
--    edges: every finalize of a parent walked every pending job (a workflow of 100 chains of
--    100 drained 18x slower than the same jobs alone). The unary + keeps that term off the
--    index, so the children come from the edge index and are looked up by id.
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

    UPDATE porter_job_deps SET resolved = 1 WHERE parent_id = NEW.id AND NOT resolved;
END;
