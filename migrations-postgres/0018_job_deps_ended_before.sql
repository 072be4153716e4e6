-- 0017's trigger, with the rows of a statement matched to their old versions without a join
-- (issue 16). Same meaning as 0017.
--
-- 0017 matched each new row to its old version (which parents entered an end here, which left
-- one) by joining the two transition tables. Their plan, made once per session for tables of
-- unknown size, was a nested loop: measured on a 10,000-step fan-out, each completion batch of
-- 1,000 of its steps scanned the 1,000 old rows once per new row (~100 ms a batch, four times
-- 0016's whole completion). Now the old rows are read once, for the jobs that had ended
-- before the statement: a claim or a completion has none, and the new rows alone then say
-- which parents end here. A statement that does touch ended jobs (a retry, a child's insert
-- marking its parents) matches old and new rows by grouping both by id.
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
        -- Parents retried after an end (an admin's retry): that end's counts stand.
        IF reopened IS NOT NULL THEN
            UPDATE porter_job_deps SET resolved = true WHERE parent_id = ANY(reopened) AND NOT resolved;
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
