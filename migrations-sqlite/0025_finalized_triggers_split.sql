-- porter_jobs_finalized split in three, each with a WHEN that says when its statements have
-- work (issue 16's chains). A trigger's statement costs even when it finds nothing: SQLite
-- opens the statement's tables and runs its lookups for every row that passes the trigger's
-- WHEN. 0021's trigger ran four statements for every job that ends with dependents or a
-- sequence key: a completed parent also ran the cancelling statement (nothing: it completed)
-- and the sequence one (nothing, unless it has a sequence key). Measured on 100 chains of 100
-- (claim 100 + complete 100 per transaction, one connection, best of 8): a link's completion
-- took 21.6 us, of which 5.6 us without the trigger; with these triggers 15.6 us. Now:
-- * porter_jobs_sequence_next: a job of a sequence ended; the sequence's next job is due.
-- * porter_jobs_finalized: a job others wait on ended; its children count the end. The two
--   statements stay in this order in one trigger: the first makes available the children
--   that waited for this job alone, the second counts the end for those that wait for more
--   (the other way round, a child waiting for two would be counted twice and made available).
--   Both are written as a join from the edges (UPDATE ... FROM), measured slightly cheaper
--   than `id IN (SELECT ...)` (about 1 us per parent's end).
-- * porter_jobs_parent_failed: a job others wait on ended cancelled or discarded; the
--   children that must not run after that are cancelled.
-- Same outcome as 0021's one trigger, though SQLite fires the three in an order of its own
-- (the newest first: the cancelling one, then the counting one, then the sequence one, the
-- reverse of 0021's statements). The order does not matter:
-- * the next job of a sequence waits for no parent (a job waits either in a sequence or for
--   parents), so the sequence trigger and the other two never touch the same job;
-- * a child has one edge to a given parent, which either counts its end (a completion, or
--   `after_any`) or cancels the child, never both;
-- * a child reached twice in one statement, through this parent and through a child of it
--   cancelled by the cascade, is reached the same way both times, since porter sets `after_any`
--   for all of a job's edges at once: counted twice (counting down in either order gives the
--   same count) or cancelled (the first cancel ends it; the second finds it no longer pending).
DROP TRIGGER porter_jobs_finalized;

CREATE TRIGGER porter_jobs_sequence_next AFTER UPDATE OF state ON porter_jobs
WHEN NEW.sequence_key IS NOT NULL AND OLD.state <> 'pending'
 AND (NEW.state = 'completed' OR NEW.state = 'cancelled' OR NEW.state = 'discarded')
 AND (OLD.state <> 'completed' AND OLD.state <> 'cancelled' AND OLD.state <> 'discarded')
BEGIN
    UPDATE porter_jobs
    SET state = CASE WHEN scheduled_at <= porter_now() THEN 'available' ELSE 'scheduled' END
    WHERE id = (SELECT min(id) FROM porter_jobs WHERE sequence_key = NEW.sequence_key AND state = 'pending')
      AND NOT EXISTS (SELECT 1 FROM porter_jobs WHERE sequence_key = NEW.sequence_key
                      AND state IN ('available','scheduled','running','retryable'));
END;

CREATE TRIGGER porter_jobs_finalized AFTER UPDATE OF state ON porter_jobs
WHEN NEW.has_dependents
 AND (NEW.state = 'completed' OR NEW.state = 'cancelled' OR NEW.state = 'discarded')
 AND (OLD.state <> 'completed' AND OLD.state <> 'cancelled' AND OLD.state <> 'discarded')
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

CREATE TRIGGER porter_jobs_parent_failed AFTER UPDATE OF state ON porter_jobs
WHEN NEW.has_dependents AND (NEW.state = 'cancelled' OR NEW.state = 'discarded')
 AND (OLD.state <> 'completed' AND OLD.state <> 'cancelled' AND OLD.state <> 'discarded')
BEGIN
    UPDATE porter_jobs
    SET state = 'cancelled',
        finalized_at = porter_now(),
        errors = json_insert(errors, '$[#]', json_object('attempt', attempt, 'at', porter_now(),
                 'error', 'parent job ' || NEW.id || ' was ' || NEW.state))
    WHERE +state = 'pending'
      AND id IN (SELECT child_id FROM porter_job_deps
                 WHERE parent_id = NEW.id AND NOT resolved AND NOT after_any);
END;
