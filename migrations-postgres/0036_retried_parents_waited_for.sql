-- A parent an admin retries after it ended is waited for again by the children still waiting
-- for it. Before, that end's count stood (the edges were resolved at the retry): a parent that
-- completed, was retried and then ended discarded let its child run, and a batch member retried
-- after it ended let the batch's on_complete callback become due before the member's new end,
-- with counts short of the batch (its on_success callback ran although the member then failed).
-- porter_job_deps_resolve (0018) again, with one change, in its branch for parents that leave
-- an end: a waiting child's count goes back up by the edges of such parents and those edges
-- stay unresolved, so the parents' next ends count; only the edges of children that no longer
-- wait are resolved. (job_retry.sql reopens every edge of a child it retries, for the same
-- reason.) Same change on SQLite: migrations-sqlite/0036_retried_parents_waited_for.sql.
CREATE OR REPLACE FUNCTION porter_job_deps_resolve() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off
AS $fn$
DECLARE
    q TEXT;
    parents BIGINT[];
    cancelled BIGINT[];
    discarded BIGINT[];
    reopened BIGINT[];
    ended_before BIGINT[];
    kids BIGINT[];
    ends INT[];
    failed_ids BIGINT[];
    failed_states TEXT[];
BEGIN
    -- Jobs that had ended before this statement: none for a claim or a completion, so their
    -- rows are read once and nothing is joined.
    SELECT array_agg(o.id) INTO ended_before
    FROM porter_old o WHERE o.state IN ('completed','cancelled','discarded');
    IF ended_before IS NULL THEN
        SELECT array_agg(n.id),
               coalesce(array_agg(n.id) FILTER (WHERE n.state = 'cancelled'), '{}'),
               coalesce(array_agg(n.id) FILTER (WHERE n.state = 'discarded'), '{}')
        INTO parents, cancelled, discarded
        FROM porter_updated n
        WHERE n.has_dependents AND n.state IN ('completed','cancelled','discarded');
    ELSE
        -- Some had (a retry, a child's insert marking its ended parents): old and new rows
        -- are matched by grouping them by id, linear whatever the sizes.
        SELECT array_agg(id) FILTER (WHERE enters AND NOT was_ended),
               coalesce(array_agg(id) FILTER (WHERE enters AND NOT was_ended AND now = 'cancelled'), '{}'),
               coalesce(array_agg(id) FILTER (WHERE enters AND NOT was_ended AND now = 'discarded'), '{}'),
               array_agg(id) FILTER (WHERE leaves AND was_ended)
        INTO parents, cancelled, discarded, reopened
        FROM (
            SELECT id, bool_or(was) AS was_ended, bool_or(enters) AS enters, bool_or(leaves) AS leaves,
                   max(now) AS now
            FROM (
                SELECT n.id, false AS was,
                       n.has_dependents AND n.state IN ('completed','cancelled','discarded') AS enters,
                       n.has_dependents AND n.state NOT IN ('completed','cancelled','discarded') AS leaves,
                       n.state AS now
                FROM porter_updated n
                UNION ALL
                SELECT o.id, true, false, false, NULL FROM unnest(ended_before) AS o(id)
            ) r
            GROUP BY id
        ) by_job;
        -- Parents retried after an end (an admin's retry). A child still waiting had counted
        -- that end: it waits for the parent's next end again (its count goes back up, and its
        -- edge stays unresolved, so that end counts). A child no longer waiting acted on the
        -- end (it ran, or the end cancelled it): its edge is resolved, and the parent's next
        -- end leaves it alone. The children are updated in id order, as below.
        IF reopened IS NOT NULL THEN
            SELECT array_agg(child_id ORDER BY child_id), array_agg(n ORDER BY child_id)
            INTO kids, ends
            FROM (SELECT d.child_id, count(*)::int AS n FROM porter_job_deps d
                  WHERE d.parent_id = ANY(reopened) AND NOT d.resolved
                  GROUP BY d.child_id) waiting;
            IF kids IS NOT NULL THEN
                -- `c.state || ''` keeps the pending test off porter_jobs_fetch (see 0014).
                UPDATE porter_jobs c SET waiting_for = c.waiting_for + p.n
                FROM unnest(kids, ends) AS p(child_id, n)
                WHERE c.id = p.child_id AND c.state || '' = 'pending';
                UPDATE porter_job_deps d SET resolved = true
                WHERE d.parent_id = ANY(reopened) AND NOT d.resolved
                  AND NOT EXISTS (SELECT 1 FROM porter_jobs c
                                  WHERE c.id = d.child_id AND c.state || '' = 'pending');
            END IF;
        END IF;
    END IF;
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

-- Waiting jobs of an existing database: every edge unresolved, as they are written from now on.
-- An edge to a parent that had ended when the job was inserted was written resolved; one to a
-- parent that has not ended was resolved by a retry of that parent while the job waited, whose
-- earlier end then stood for the job: the job waits for that parent's end again.
UPDATE porter_jobs c SET waiting_for = c.waiting_for + x.n
FROM (SELECT d.child_id, count(*)::int AS n
      FROM porter_job_deps d JOIN porter_jobs p ON p.id = d.parent_id
      WHERE d.resolved AND p.state NOT IN ('completed','cancelled','discarded')
      GROUP BY d.child_id) x
WHERE c.id = x.child_id AND c.state = 'pending';
UPDATE porter_job_deps d SET resolved = false
WHERE d.resolved AND EXISTS (SELECT 1 FROM porter_jobs c WHERE c.id = d.child_id AND c.state = 'pending');
