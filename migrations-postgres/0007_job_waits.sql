-- Jobs that wait for other jobs (issues 15.4 and 16.1): sequences and dependencies, one
-- mechanism, the state 'pending'. Same tables, columns and meaning as
-- migrations-sqlite/0007_job_waits.sql (see there); the differences are commented below.
ALTER TABLE porter_jobs
    ADD COLUMN sequence_key TEXT,
    ADD COLUMN waiting_for INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN has_dependents BOOLEAN NOT NULL DEFAULT false;

-- PostgreSQL alters a CHECK directly (SQLite edits the table's text).
ALTER TABLE porter_jobs DROP CONSTRAINT porter_jobs_state_check;
ALTER TABLE porter_jobs ADD CONSTRAINT porter_jobs_state_check
    CHECK (state IN ('available','scheduled','running','retryable','completed','cancelled','discarded','pending'));

DROP INDEX porter_jobs_unique_key;
CREATE UNIQUE INDEX porter_jobs_unique_key ON porter_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('available','scheduled','running','retryable','pending');
CREATE UNIQUE INDEX porter_jobs_sequence_active ON porter_jobs (sequence_key)
    WHERE sequence_key IS NOT NULL AND state IN ('available','scheduled','running','retryable');
CREATE INDEX porter_jobs_sequence_pending ON porter_jobs (sequence_key, id)
    WHERE sequence_key IS NOT NULL AND state = 'pending';

CREATE TABLE porter_job_deps (
    child_id  BIGINT  NOT NULL REFERENCES porter_jobs (id) ON DELETE CASCADE,
    parent_id BIGINT  NOT NULL REFERENCES porter_jobs (id) ON DELETE CASCADE,
    after_any BOOLEAN NOT NULL DEFAULT false,
    resolved  BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (child_id, parent_id)
);
CREATE INDEX porter_job_deps_parent ON porter_job_deps (parent_id) WHERE NOT resolved;

-- The trigger of SQLite's migration, as a function. Differences, all for concurrent
-- transactions under READ COMMITTED (SQLite's one writer serializes everything):
-- * Sequences: the promotion first takes a transaction-scoped advisory lock on the key, which
--   every insert and retry of a sequence job takes too (src/store/postgres/mod.rs). Without it
--   a finalize and an insert of the same key could each miss the other (the insert sees the
--   active job still running and goes pending; the finalize's promotion does not see the
--   uncommitted pending row): a job left pending for ever. Each statement of a PL/pgSQL
--   function takes a fresh snapshot, so the promotion, run after the lock, sees what the
--   transaction that held it committed.
-- * Dependencies: a child's insert first updates its parents' rows (has_dependents), so a
--   finalize of a parent waits for the insert to commit (or the insert for the finalize), and
--   this function, run after, sees the child's edges. Two parents of one child ending at once
--   both update the child's row: the second waits for the first and re-reads it
--   (waiting_for is decremented on the newest version), so neither end is lost or counted
--   twice, and the child is promoted exactly once.
-- * Promoted available jobs are announced with NOTIFY porter_insert (delivered at commit), as
--   inserts are, so producers in every process wake at once.
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
    IF NEW.has_dependents THEN
        FOR r IN
            WITH edges AS (
                UPDATE porter_job_deps SET resolved = true
                WHERE parent_id = NEW.id AND NOT resolved
                RETURNING child_id, after_any
            )
            UPDATE porter_jobs c SET
                waiting_for  = c.waiting_for - 1,
                state        = CASE WHEN NEW.state <> 'completed' AND NOT e.after_any THEN 'cancelled'
                                    WHEN c.waiting_for = 1
                                    THEN CASE WHEN c.scheduled_at <= porter_now() THEN 'available' ELSE 'scheduled' END
                                    ELSE c.state END,
                finalized_at = CASE WHEN NEW.state <> 'completed' AND NOT e.after_any THEN porter_now()
                                    ELSE c.finalized_at END,
                errors       = CASE WHEN NEW.state <> 'completed' AND NOT e.after_any
                                    THEN c.errors || jsonb_build_array(jsonb_build_object('attempt', c.attempt,
                                         'at', porter_now(), 'error', format('parent job %s was %s', NEW.id, NEW.state)))
                                    ELSE c.errors END
            FROM edges e
            WHERE c.id = e.child_id AND c.state = 'pending'
            RETURNING c.queue, c.state
        LOOP
            IF r.state = 'available' THEN
                PERFORM pg_notify('porter_insert', r.queue);
            END IF;
        END LOOP;
    END IF;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER porter_jobs_finalized AFTER UPDATE OF state ON porter_jobs
FOR EACH ROW
WHEN (NEW.state IN ('completed','cancelled','discarded')
      AND OLD.state NOT IN ('completed','cancelled','discarded')
      AND (NEW.sequence_key IS NOT NULL OR NEW.has_dependents))
EXECUTE FUNCTION porter_job_finalized();
