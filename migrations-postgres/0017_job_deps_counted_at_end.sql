-- A parent's end is counted without writing its edges (issue 16's 2x target): the statement
-- trigger of 0014/0016 marked every edge of every ended parent `resolved`, one more row
-- version (and index entries: `resolved` is in 0015's index predicate, so never HOT) per
-- edge: measured on 100 chains of 100, the edge update took ~4 ms of each ~14 ms completion of
-- 100 jobs, and a fan-out's 9,998 children cost 9,998 edge versions on top of theirs.
--
-- What changes is what `resolved` records, on both backends (SQLite's twin does the same):
-- * before: "this edge was counted" (set when its parent ended);
-- * now: "this edge was counted at an end its parent has since left" (set when a parent is
--   retried: its state leaves completed/cancelled/discarded). An edge is inserted resolved
--   when its parent has already ended, as before.
-- So an edge waits on its parent exactly when it is unresolved and the parent has not ended.
-- When a parent enters an end in a statement, its unresolved edges are the ones not counted
-- yet: counted once. A parent retried after its end first resolves its edges (so its next end
-- counts only the children inserted since), the case a_retried_parent_counts_once covers.
-- Rows written by earlier versions (ended parents' edges resolved) mean the same under this
-- rule, and so do rows copied between backends (porter copy) either way.
--
-- Which parents entered (or left) an end in the statement is read from both transition
-- tables, so a statement touching a job that ended earlier (a child's insert marks its
-- parents: job_parents_mark.sql) reads none of its edges: 0015's index of unresolved edges,
-- which kept that touch from rereading them, is not needed and is dropped (one index entry
-- less per edge inserted). Edges are found through 0012's index by parent.
--
-- Concurrency (READ COMMITTED) as 0014/0016: nothing here locks an edge any more; a parent's
-- end is its own row's update (a second statement ending it waits for that row and then finds
-- it ended: no transition), a child's insert locks its parents first (job_parents_mark.sql),
-- and two transactions ending parents of one child both update the child's row, the second
-- waiting for the first and re-reading its newest version. Children are updated in id order,
-- so two such transactions take their rows in one order.
CREATE OR REPLACE FUNCTION porter_job_deps_resolve() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off
AS $fn$
DECLARE
    q TEXT;
    parents BIGINT[];
    cancelled BIGINT[];
    discarded BIGINT[];
    reopened BIGINT[];
    kids BIGINT[];
    ends INT[];
    failed_ids BIGINT[];
    failed_states TEXT[];
BEGIN
    -- Parents retried after an end (rare: an admin's retry): that end's counts stand.
    SELECT array_agg(o.id) INTO reopened
    FROM porter_old o
    WHERE o.has_dependents AND o.state IN ('completed','cancelled','discarded')
      AND EXISTS (SELECT 1 FROM porter_updated n
                  WHERE n.id = o.id AND n.state NOT IN ('completed','cancelled','discarded'));
    IF reopened IS NOT NULL THEN
        UPDATE porter_job_deps SET resolved = true WHERE parent_id = ANY(reopened) AND NOT resolved;
    END IF;
    -- Parents entering an end in this statement.
    SELECT array_agg(n.id),
           coalesce(array_agg(n.id) FILTER (WHERE n.state = 'cancelled'), '{}'),
           coalesce(array_agg(n.id) FILTER (WHERE n.state = 'discarded'), '{}')
    INTO parents, cancelled, discarded
    FROM porter_updated n
    WHERE n.has_dependents AND n.state IN ('completed','cancelled','discarded')
      AND NOT EXISTS (SELECT 1 FROM porter_old o
                      WHERE o.id = n.id AND o.state IN ('completed','cancelled','discarded'));
    IF parents IS NULL THEN
        RETURN NULL;
    END IF;
    -- Per child: how many of its parents ended here, and the first (by id) whose end it
    -- cannot run after (it is cancelled naming that parent); in child id order.
    SELECT array_agg(child_id ORDER BY child_id), array_agg(ended ORDER BY child_id),
           array_agg(failed_id ORDER BY child_id), array_agg(failed_state ORDER BY child_id)
    INTO kids, ends, failed_ids, failed_states
    FROM (
        SELECT child_id, count(*)::int AS ended,
               min(parent_id) FILTER (WHERE failed_state IS NOT NULL) AS failed_id,
               (array_agg(failed_state ORDER BY parent_id) FILTER (WHERE failed_state IS NOT NULL))[1] AS failed_state
        FROM (
            SELECT d.child_id, d.parent_id,
                   CASE WHEN d.after_any THEN NULL
                        WHEN d.parent_id = ANY(cancelled) THEN 'cancelled'
                        WHEN d.parent_id = ANY(discarded) THEN 'discarded' END AS failed_state
            FROM porter_job_deps d
            WHERE d.parent_id = ANY(parents) AND NOT d.resolved
        ) edges
        GROUP BY child_id
    ) per_child;
    IF kids IS NULL THEN
        RETURN NULL;
    END IF;
    FOR q IN
        WITH changed AS (
            -- `c.state || ''` keeps the pending test off porter_jobs_fetch (see 0014).
            UPDATE porter_jobs c SET
                waiting_for  = c.waiting_for - p.ended,
                state        = CASE WHEN p.failed_id IS NOT NULL THEN 'cancelled'
                                    WHEN c.waiting_for = p.ended
                                    THEN CASE WHEN c.scheduled_at <= porter_now() THEN 'available' ELSE 'scheduled' END
                                    ELSE c.state END,
                finalized_at = CASE WHEN p.failed_id IS NOT NULL THEN porter_now() ELSE c.finalized_at END,
                errors       = CASE WHEN p.failed_id IS NOT NULL
                                    THEN c.errors || jsonb_build_array(jsonb_build_object('attempt', c.attempt,
                                         'at', porter_now(), 'error', format('parent job %s was %s', p.failed_id, p.failed_state)))
                                    ELSE c.errors END
            FROM unnest(kids, ends, failed_ids, failed_states) AS p(child_id, ended, failed_id, failed_state)
            WHERE c.id = p.child_id AND c.state || '' = 'pending'
            RETURNING c.queue, c.state
        )
        SELECT DISTINCT queue FROM changed WHERE state = 'available'
    LOOP
        PERFORM pg_notify('porter_insert', q);
    END LOOP;
    RETURN NULL;
END
$fn$;

DROP TRIGGER porter_jobs_deps_resolved ON porter_jobs;
CREATE TRIGGER porter_jobs_deps_resolved AFTER UPDATE ON porter_jobs
REFERENCING OLD TABLE AS porter_old NEW TABLE AS porter_updated
FOR EACH STATEMENT EXECUTE FUNCTION porter_job_deps_resolve();

DROP INDEX IF EXISTS porter_job_deps_unresolved;
