-- Jobs that wait for other jobs (issues 15.4 and 16.1): sequences and dependencies, one
-- mechanism. A waiting job is in the new state 'pending': never claimed, and made available
-- (or scheduled, when its due time is ahead) by the trigger below, in the same transaction
-- that finalizes what it waited for. Same meaning as migrations-postgres/0007_job_waits.sql.
--
-- sequence_key: jobs with one key run one at a time in insertion order: while the key has an
--   unfinished job that is not pending (its "active" job, at most one, by the unique index
--   below), later ones are inserted pending; finalizing the active job promotes the oldest
--   pending one. A job waiting to retry (retryable) stays active: it holds its sequence.
-- waiting_for: how many of the job's parents (porter_job_deps) have not ended as it needs
--   (completed; or ended at all for after_any edges); it runs when this reaches 0.
-- has_dependents: set on a parent when a child is inserted (which also locks the parent's row
--   on PostgreSQL against a concurrent finalize), so the trigger skips every other job cheaply.
ALTER TABLE porter_jobs ADD COLUMN sequence_key TEXT;
ALTER TABLE porter_jobs ADD COLUMN waiting_for INTEGER NOT NULL DEFAULT 0;
ALTER TABLE porter_jobs ADD COLUMN has_dependents INTEGER NOT NULL DEFAULT 0;

-- The state CHECK gains 'pending'. SQLite cannot alter a CHECK; its documented way to relax
-- one (https://sqlite.org/lang_altertable.html, "otherwise alter"), without copying the table,
-- is to edit the table's text in sqlite_schema. Loosening a CHECK never makes a stored row
-- invalid. RESET reloads this connection's schema; the ALTERs above and the CREATEs below bump
-- the schema cookie, so every other connection reloads it too.
PRAGMA writable_schema = ON;
UPDATE sqlite_master
SET sql = replace(sql, '''completed'',''cancelled'',''discarded'')', '''completed'',''cancelled'',''discarded'',''pending'')')
WHERE type = 'table' AND name = 'porter_jobs';
PRAGMA writable_schema = RESET;
PRAGMA writable_schema = OFF;
-- Refuse to go on when the edit did not take (a table text porter did not write): json()
-- fails on the message, and the migration rolls back.
SELECT json(CASE WHEN sql LIKE '%''discarded'',''pending'')%' THEN '1'
                 ELSE 'porter migration 7: the state CHECK of porter_jobs was not recognised' END)
FROM sqlite_master WHERE type = 'table' AND name = 'porter_jobs';

-- A pending job holds its unique key like every unfinished job.
DROP INDEX porter_jobs_unique_key;
CREATE UNIQUE INDEX porter_jobs_unique_key ON porter_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('available','scheduled','running','retryable','pending');
-- At most one active job per sequence: two of a sequence can never run at once, whatever path
-- would try.
CREATE UNIQUE INDEX porter_jobs_sequence_active ON porter_jobs (sequence_key)
    WHERE sequence_key IS NOT NULL AND state IN ('available','scheduled','running','retryable');
-- The next of a sequence: its oldest pending job.
CREATE INDEX porter_jobs_sequence_pending ON porter_jobs (sequence_key, id)
    WHERE sequence_key IS NOT NULL AND state = 'pending';

-- One row per (child, parent). resolved: the parent's end was counted (or the child was
-- inserted after it), so a parent retried by hand and ending again counts once.
CREATE TABLE porter_job_deps (
    child_id  INTEGER NOT NULL REFERENCES porter_jobs (id) ON DELETE CASCADE,
    parent_id INTEGER NOT NULL REFERENCES porter_jobs (id) ON DELETE CASCADE,
    after_any INTEGER NOT NULL DEFAULT 0,
    resolved  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (child_id, parent_id)
);
CREATE INDEX porter_job_deps_parent ON porter_job_deps (parent_id) WHERE NOT resolved;

-- When a job with a sequence key or dependents reaches a final state (from any path: a
-- completion, a failure, a cancel, a rescue), in the same transaction:
-- 1. its sequence's oldest pending job becomes due, unless the sequence has an active job
--    (a pending job that is cancelled was never active and promotes nothing);
-- 2. each child waiting on it counts it: completed satisfies every edge, any end satisfies an
--    after_any edge; the child is due once nothing is left;
-- 3. a child it does not satisfy (it was discarded or cancelled) is cancelled, with the parent
--    named in its errors; that cancel fires this trigger for the child in turn (porter's
--    connections set recursive_triggers = ON), so the whole branch below ends.
-- Promoted jobs become available (or scheduled when their due time is ahead); this process's
-- producers see the commit through PRAGMA data_version like any other write.
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
    WHERE state = 'pending'
      AND id IN (SELECT child_id FROM porter_job_deps
                 WHERE parent_id = NEW.id AND NOT resolved AND (NEW.state = 'completed' OR after_any));

    UPDATE porter_jobs
    SET state = 'cancelled',
        finalized_at = porter_now(),
        errors = json_insert(errors, '$[#]', json_object('attempt', attempt, 'at', porter_now(),
                 'error', 'parent job ' || NEW.id || ' was ' || NEW.state))
    WHERE state = 'pending'
      AND id IN (SELECT child_id FROM porter_job_deps
                 WHERE parent_id = NEW.id AND NOT resolved AND NEW.state <> 'completed' AND NOT after_any);

    UPDATE porter_job_deps SET resolved = 1 WHERE parent_id = NEW.id AND NOT resolved;
END;
