-- porter_job_deps_resolve (0042), the function whole again, with one change: a child counts as
-- not started when each of its attempts was given back before its handler ran (the release of
-- a job claimed ahead of a free slot marks its history's entry `"unstarted": true`), not only
-- when it was never claimed. A give-back keeps the attempt count (a fence never comes back), so
-- a child claimed ahead and given back unstarted (at a shutdown, or after waiting too long for a
-- slot) looked started: a parent retried after that was not waited for, and the child ran
-- beside, or before, its parent's new run. A child stopped by a shutdown, or put back by a
-- reconcile, may have run, and counts as started as before.
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
            -- Every waiting child counts each of these parents again, whatever an earlier retry
            -- made of its edge (0039: 0036 counted unresolved edges only, so a child that had
            -- acted on an earlier end and waits again missed it and ran before the new one).
            SELECT array_agg(child_id ORDER BY child_id), array_agg(n ORDER BY child_id)
            INTO kids, ends
            FROM (SELECT d.child_id, count(*)::int AS n FROM porter_job_deps d
                  WHERE d.parent_id = ANY(reopened)
                  GROUP BY d.child_id) waiting;
            IF kids IS NOT NULL THEN
                -- A child that end made available (or scheduled), and that has not started,
                -- waits again too (0039): back to pending, counted next like a child still
                -- waiting. `c.state || ''` keeps the state tests off porter_jobs_fetch (0014).
                -- Not started: each of its attempts was given back before its handler ran
                -- (0044: an entry marked `unstarted` per such attempt; the attempt count alone
                -- took a child claimed ahead and given back for started).
                UPDATE porter_jobs c SET state = 'pending', waiting_for = 0
                FROM unnest(kids) AS p(child_id)
                WHERE c.id = p.child_id AND c.state || '' IN ('available', 'scheduled')
                  AND c.attempt = (SELECT count(*) FROM jsonb_array_elements(
                                       CASE WHEN jsonb_typeof(c.errors) = 'array' THEN c.errors ELSE '[]' END) e
                                   WHERE e -> 'unstarted' = 'true'::jsonb);
                UPDATE porter_jobs c SET waiting_for = c.waiting_for + p.n
                FROM unnest(kids, ends) AS p(child_id, n)
                WHERE c.id = p.child_id AND c.state || '' = 'pending';
                UPDATE porter_job_deps d SET resolved = false
                WHERE d.parent_id = ANY(reopened) AND d.resolved
                  AND EXISTS (SELECT 1 FROM porter_jobs c
                              WHERE c.id = d.child_id AND c.state || '' = 'pending');
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
    -- The waiting jobs below the ones cancelled here, however deep: cancelled in this same
    -- statement, each naming its first (by id) parent among them. One level at a time, each
    -- level's update would run this trigger again, nested, and a chain a few hundred deep
    -- exceeded the stack: its root's end could not be written. The nested run this update
    -- starts finds those jobs' children cancelled already and only counts their ends for
    -- after_any children. A job freed here anyway (its last parent completed) that waits after
    -- a cancelled one is cancelled instead.
    IF cardinality(cancelled) > 0 OR cardinality(discarded) > 0 THEN
        SELECT array_agg(child_id ORDER BY child_id), array_agg(ended ORDER BY child_id),
               array_agg(failed_id ORDER BY child_id), array_agg(failed_state ORDER BY child_id)
        INTO kids, ends, failed_ids, failed_states
        FROM (
            WITH RECURSIVE direct AS (
                SELECT * FROM unnest(kids, ends, failed_ids, failed_states)
                    AS p(child_id, ended, failed_id, failed_state)
            ), doomed(id) AS (
                SELECT p.child_id FROM direct p JOIN porter_jobs c ON c.id = p.child_id
                WHERE p.failed_id IS NOT NULL AND c.state || '' = 'pending'
                UNION
                SELECT d.child_id FROM doomed x
                JOIN porter_job_deps d ON d.parent_id = x.id AND NOT d.resolved AND NOT d.after_any
                JOIN porter_jobs c ON c.id = d.child_id AND c.state || '' = 'pending'
            ), below AS (
                SELECT d.child_id, min(d.parent_id) AS failed_id
                FROM doomed x
                JOIN porter_job_deps d ON d.parent_id = x.id AND NOT d.resolved AND NOT d.after_any
                WHERE d.child_id IN (SELECT id FROM doomed)
                GROUP BY d.child_id
            )
            SELECT coalesce(p.child_id, b.child_id) AS child_id, coalesce(p.ended, 0) AS ended,
                   coalesce(p.failed_id, b.failed_id) AS failed_id,
                   CASE WHEN p.failed_id IS NOT NULL THEN p.failed_state
                        WHEN b.failed_id IS NOT NULL THEN 'cancelled' END AS failed_state
            FROM direct p FULL JOIN below b ON b.child_id = p.child_id
        ) merged;
    END IF;
    FOR q IN
        WITH changed AS (
            -- `c.state || ''` keeps the pending test off porter_jobs_fetch (see 0014).
            UPDATE porter_jobs c SET
                waiting_for  = c.waiting_for - p.ended,
                state        = CASE WHEN p.failed_id IS NOT NULL THEN 'cancelled'
                                    WHEN c.waiting_for = p.ended
                                    -- By the clock as the row is written (0042), so after
                                    -- the commit of any child this update finds.
                                    THEN CASE WHEN c.scheduled_at <= coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, clock_timestamp())
                                              THEN 'available' ELSE 'scheduled' END
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
