-- 0014's statement trigger, with its lookups pinned to indexes (issue 16's 2x target). Same
-- meaning as 0014; only how the rows are found changes.
--
-- The trigger's plan is made for a transition table the planner cannot see into, against
-- statistics a fan-out skews (one parent with thousands of edges): measured on a 100 x 100
-- chains drain (auto_explain, 30,000 jobs in the table), each completion batch found its 40-100
-- unresolved edges by a sequential scan of porter_job_deps and their children by a sequential
-- scan of porter_jobs, ~20 ms of each ~25 ms completion, the table being small enough for the
-- planner to prefer that. Joining the children to their per-child counts by id instead (a
-- first attempt) let the planner rescan the counts once per child: the root of a 10,000-step
-- fan-out then took 50 s to complete.
--
-- So nothing here is joined: the ended parents are collected into arrays first (their edges
-- are then found through porter_job_deps_unresolved, 0015, and whether a parent failed is a
-- test on the small arrays of cancelled and discarded ones), the counts per child into arrays
-- next, and the children are updated from `unnest` of those, each found by primary key. And
-- the function plans without sequential scans (its SET clause, restored when it returns):
-- every table it reads is reached through an index from ids it holds, whatever the sizes.
--
-- Concurrency as 0014 (READ COMMITTED): the children are now updated by a second statement of
-- the function, which takes a newer snapshot than the first; a child updated meanwhile by
-- another transaction ending another of its parents is waited for and re-read at its newest
-- version (waiting_for decremented on it, `pending` re-tested), so no end is lost or counted
-- twice and the child is promoted exactly once.
CREATE OR REPLACE FUNCTION porter_job_deps_resolve() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off
AS $fn$
DECLARE
    q TEXT;
    parents BIGINT[];
    cancelled BIGINT[];
    discarded BIGINT[];
    kids BIGINT[];
    ends INT[];
    failed_ids BIGINT[];
    failed_states TEXT[];
BEGIN
    SELECT array_agg(id),
           coalesce(array_agg(id) FILTER (WHERE state = 'cancelled'), '{}'),
           coalesce(array_agg(id) FILTER (WHERE state = 'discarded'), '{}')
    INTO parents, cancelled, discarded
    FROM porter_updated
    WHERE has_dependents AND state IN ('completed','cancelled','discarded');
    IF parents IS NULL THEN
        RETURN NULL;
    END IF;
    WITH edges AS (
        UPDATE porter_job_deps d SET resolved = true
        WHERE d.parent_id = ANY(parents) AND NOT d.resolved
        RETURNING d.child_id, d.parent_id,
                  CASE WHEN d.after_any THEN NULL
                       WHEN d.parent_id = ANY(cancelled) THEN 'cancelled'
                       WHEN d.parent_id = ANY(discarded) THEN 'discarded' END AS failed_state
    ),
    -- Per child: how many of its parents ended here, and the first (by id) whose end it
    -- cannot run after (it is cancelled naming that parent).
    per_child AS (
        SELECT child_id, count(*)::int AS ended,
               min(parent_id) FILTER (WHERE failed_state IS NOT NULL) AS failed_id,
               (array_agg(failed_state ORDER BY parent_id) FILTER (WHERE failed_state IS NOT NULL))[1] AS failed_state
        FROM edges GROUP BY child_id
    )
    SELECT array_agg(child_id), array_agg(ended), array_agg(failed_id), array_agg(failed_state)
    INTO kids, ends, failed_ids, failed_states
    FROM per_child;
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
