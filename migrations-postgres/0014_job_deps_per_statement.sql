-- Dependencies counted once per statement, not once per ended parent (issue 16's 2x target).
-- Same meaning as 0007's trigger (and as SQLite's, which keeps it per row: see
-- migrations-sqlite/0014_job_deps_per_statement.sql); only where the work is done changes.
--
-- 0007 resolved a parent's edges in a row trigger: one PL/pgSQL call and one statement per
-- ended parent, and one update of the child's row per parent. A completion batch of 1,000
-- children of one fan-in step wrote 1,000 versions of that step's row in one transaction, each
-- found by walking the versions before it (a 10,000-step fan-in drained 5x slower than the
-- same jobs alone, and 100 chains of 100 steps 30x). Now a statement trigger does it for
-- every row of the statement at once: each ended parent's edges are resolved together, and
-- each child is updated once, by the number of its parents that ended.
--
-- Why "ended and has unresolved edges" finds exactly the parents that just ended: an edge is
-- inserted resolved when its parent had already ended (src/store/postgres/mod.rs, the hold),
-- and is resolved in the statement that ends its parent otherwise. So an ended parent with an
-- unresolved edge ended in this statement (a parent retried by hand and ending again finds its
-- edges resolved: it counts once). A column list (UPDATE OF state) cannot go with a transition
-- table, so the trigger runs after every UPDATE of porter_jobs; it returns after one scan of the
-- updated rows when none of them is an ended parent.
--
-- Concurrency (READ COMMITTED), as 0007: a child's insert locks its parents' rows first
-- (job_parents_mark.sql), so the statement ending a parent waits for that insert to commit,
-- and this function, whose statement takes a new snapshot, sees the child's edges. Two
-- statements ending parents of one child in two transactions both update the child's row:
-- the second waits for the first to commit and re-reads the newest version (waiting_for is
-- decremented on it, and the promotion test reads it), so no end is lost or counted twice and
-- the child is promoted exactly once.
--
-- Rows this trigger updates fire it again: cancelled children cancel theirs in turn, and
-- promoted ones return at the first test. Promoted available jobs are announced with NOTIFY
-- porter_insert (delivered at commit), one per queue.
CREATE OR REPLACE FUNCTION porter_job_deps_resolve() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    q TEXT;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM porter_updated
                   WHERE has_dependents AND state IN ('completed','cancelled','discarded')) THEN
        RETURN NULL;
    END IF;
    FOR q IN
        WITH ended AS (
            SELECT id, state FROM porter_updated
            WHERE has_dependents AND state IN ('completed','cancelled','discarded')
        ),
        edges AS (
            UPDATE porter_job_deps d SET resolved = true
            FROM ended p
            WHERE d.parent_id = p.id AND NOT d.resolved
            RETURNING d.child_id, p.id AS parent_id, p.state AS parent_state,
                      p.state <> 'completed' AND NOT d.after_any AS fails
        ),
        -- Per child: how many of its parents ended here, and the first (by id) whose end it
        -- cannot run after (it is cancelled naming that parent).
        per_child AS (
            SELECT child_id, count(*)::int AS ended,
                   min(parent_id) FILTER (WHERE fails) AS failed_id,
                   (array_agg(parent_state ORDER BY parent_id) FILTER (WHERE fails))[1] AS failed_state
            FROM edges GROUP BY child_id
        ),
        changed AS (
            -- Children are found by id: `c.state || ''` keeps the pending test off
            -- porter_jobs_fetch, which the planner (blind to the transition table's size) would
            -- otherwise walk over every waiting job of every workflow, once per child.
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
            FROM per_child p
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

CREATE TRIGGER porter_jobs_deps_resolved AFTER UPDATE ON porter_jobs
REFERENCING NEW TABLE AS porter_updated
FOR EACH STATEMENT EXECUTE FUNCTION porter_job_deps_resolve();

-- 0007's row trigger keeps sequences only (a job has a sequence key or parents, never both).
CREATE OR REPLACE FUNCTION porter_job_finalized() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    r RECORD;
BEGIN
    IF NEW.sequence_key IS NOT NULL AND OLD.state <> 'pending' THEN
        PERFORM pg_advisory_xact_lock(1886350450, hashtext(NEW.sequence_key));
        FOR r IN
            UPDATE porter_jobs
            SET state = CASE WHEN scheduled_at <= porter_now() THEN 'available' ELSE 'scheduled' END
            WHERE id = (SELECT id FROM porter_jobs WHERE sequence_key = NEW.sequence_key AND state = 'pending'
                        ORDER BY id LIMIT 1)
              AND state = 'pending'
              AND NOT EXISTS (SELECT 1 FROM porter_jobs WHERE sequence_key = NEW.sequence_key
                              AND state IN ('available','scheduled','running','retryable'))
            RETURNING queue, state
        LOOP
            IF r.state = 'available' THEN
                PERFORM pg_notify('porter_insert', r.queue);
            END IF;
        END LOOP;
    END IF;
    RETURN NULL;
END
$fn$;

DROP TRIGGER porter_jobs_finalized ON porter_jobs;
CREATE TRIGGER porter_jobs_finalized AFTER UPDATE OF state ON porter_jobs
FOR EACH ROW
WHEN (NEW.state IN ('completed','cancelled','discarded')
      AND OLD.state NOT IN ('completed','cancelled','discarded')
      AND NEW.sequence_key IS NOT NULL)
EXECUTE FUNCTION porter_job_finalized();
