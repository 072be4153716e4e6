-- 1. A failed parent's cancels reach the end of a chain of any depth. porter_jobs_parent_failed
-- (0034) cancelled a failed parent's waiting children, and each child's cancel ran the trigger
-- again for its own children: one nested trigger level per level of the chain. Past SQLite's
-- 1,000 trigger levels ("too many levels of trigger recursion") the end of a chain's root could
-- not be written at all: a failing root was put back to run again without end, its chain
-- waited for good, and a cancel of it failed. Now the trigger cancels every waiting job below
-- the failed parent at once. First it resolves the edges among those jobs (each child acts on
-- its parent's end here: it is cancelled), so that the trigger, run again for each of them,
-- finds no child of theirs left to cancel. Every waiting job's edges are unresolved (0036), so
-- below the failed parent's own edges the second statement follows those edges resolved or
-- not. Each job cancelled names its first parent (by id) among the failed one, when it waits
-- for it, and the jobs cancelled with it, as before. Same change on PostgreSQL:
-- migrations-postgres/0039_dependency_cascade_and_retried_parents.sql.
DROP TRIGGER porter_jobs_parent_failed;
CREATE TRIGGER porter_jobs_parent_failed AFTER UPDATE OF state ON porter_jobs
WHEN NEW.has_dependents AND (NEW.state = 'cancelled' OR NEW.state = 'discarded')
 AND (OLD.state <> 'completed' AND OLD.state <> 'cancelled' AND OLD.state <> 'discarded')
BEGIN
    UPDATE porter_job_deps SET resolved = 1
    WHERE NOT resolved AND NOT after_any
      AND parent_id IN (
          SELECT id FROM (
              WITH RECURSIVE doomed(id) AS (
                  SELECT d.child_id FROM porter_job_deps d JOIN porter_jobs c ON c.id = d.child_id
                  WHERE d.parent_id = NEW.id AND NOT d.resolved AND NOT d.after_any AND +c.state = 'pending'
                  UNION
                  SELECT d.child_id FROM doomed x JOIN porter_job_deps d ON d.parent_id = x.id
                  JOIN porter_jobs c ON c.id = d.child_id
                  WHERE NOT d.resolved AND NOT d.after_any AND +c.state = 'pending')
              SELECT id FROM doomed))
      AND EXISTS (SELECT 1 FROM porter_jobs c WHERE c.id = child_id AND +c.state = 'pending');

    UPDATE porter_jobs
    SET state = 'cancelled',
        finalized_at = porter_now(),
        errors = json_insert(CASE WHEN NOT json_valid(errors) THEN '[]'
                                  WHEN json_type(errors) = 'array' THEN errors ELSE '[]' END,
                 '$[#]', json_object('attempt', attempt, 'at', porter_now(),
                 'error', CASE WHEN EXISTS (SELECT 1 FROM porter_job_deps d
                                            WHERE d.child_id = porter_jobs.id AND d.parent_id = NEW.id
                                              AND NOT d.resolved AND NOT d.after_any)
                               THEN 'parent job ' || NEW.id || ' was ' || NEW.state
                               ELSE 'parent job ' || (
                                   -- A parent in the branch: its edge was resolved above (a
                                   -- parent that ended otherwise is completed, or ended before).
                                   SELECT min(d.parent_id) FROM porter_job_deps d
                                   JOIN porter_jobs p ON p.id = d.parent_id
                                   WHERE d.child_id = porter_jobs.id AND d.resolved AND NOT d.after_any
                                     AND (p.state = 'cancelled' OR p.state = 'pending')) || ' was cancelled' END))
    WHERE +state = 'pending'
      AND id IN (
          SELECT id FROM (
              WITH RECURSIVE doomed(id) AS (
                  SELECT d.child_id FROM porter_job_deps d JOIN porter_jobs c ON c.id = d.child_id
                  WHERE d.parent_id = NEW.id AND NOT d.resolved AND NOT d.after_any AND +c.state = 'pending'
                  UNION
                  SELECT d.child_id FROM doomed x JOIN porter_job_deps d ON d.parent_id = x.id AND NOT d.after_any
                  JOIN porter_jobs c ON c.id = d.child_id AND +c.state = 'pending')
              SELECT id FROM doomed));
END;

-- 2. A parent retried after its end made a child available (or scheduled), before the child
-- started, is waited for again, as it already was by a child still waiting (0036): the child
-- goes back to pending, and is counted with the waiting ones. Before, it stayed claimable, and
-- ran while the parent ran again, or after the parent's new run failed. And every waiting
-- child counts the parent again, whatever an earlier retry made of its edge: 0036 counted
-- unresolved edges only, so a child that had acted on an earlier end of the parent, and waits
-- again, reopened the edge without counting it and ran before the parent's new end.
DROP TRIGGER porter_jobs_reopened;
CREATE TRIGGER porter_jobs_reopened AFTER UPDATE OF state ON porter_jobs
WHEN NEW.has_dependents AND (OLD.state = 'completed' OR OLD.state = 'cancelled' OR OLD.state = 'discarded')
 AND (NEW.state <> 'completed' AND NEW.state <> 'cancelled' AND NEW.state <> 'discarded')
BEGIN
    UPDATE porter_jobs SET state = 'pending', waiting_for = 0
    WHERE (+state = 'available' OR +state = 'scheduled') AND attempt = 0
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
