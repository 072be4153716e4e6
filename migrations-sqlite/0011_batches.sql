-- Batches (issue 16.3): a set of jobs and one callback job that runs once all of them ended
-- (on_complete) or only if all of them completed (on_success). Same meaning as
-- migrations-postgres/0011_batches.sql.
--
-- The callback is inserted with the batch, `pending`, as a child of every member (0007's
-- dependencies: after_any edges for on_complete, plain edges for on_success), so the trigger
-- porter_jobs_finalized makes it due exactly once, in the transaction that ends the last
-- member, whichever process that is (or cancels it, on_success, when a member ends discarded
-- or cancelled). The trigger below then writes the members' counts by end state into its args,
-- in that same transaction.
CREATE TABLE porter_batches (
    id          INTEGER PRIMARY KEY AUTOINCREMENT, -- AUTOINCREMENT: ids never reused after deletes
    callback_id INTEGER,                           -- set in the batch's insert transaction
    on_success  INTEGER NOT NULL,                  -- 1: the callback runs only if all completed
    members     INTEGER NOT NULL,
    created_at  TEXT    NOT NULL
);

-- The batch of a member or of the callback.
ALTER TABLE porter_jobs ADD COLUMN batch_id INTEGER;
CREATE INDEX porter_jobs_batch ON porter_jobs (batch_id, state) WHERE batch_id IS NOT NULL;

-- When a batch's callback leaves `pending` to run, its args get the members' counts by end
-- state (they are all final by then: it waited for each of them).
CREATE TRIGGER porter_batch_callback_due AFTER UPDATE OF state ON porter_jobs
WHEN OLD.state = 'pending' AND NEW.state IN ('available','scheduled') AND NEW.batch_id IS NOT NULL
BEGIN
    UPDATE porter_jobs
    SET args = json_set(args,
        '$.completed', (SELECT count(*) FROM porter_jobs m WHERE m.batch_id = NEW.batch_id AND m.id <> NEW.id AND m.state = 'completed'),
        '$.cancelled', (SELECT count(*) FROM porter_jobs m WHERE m.batch_id = NEW.batch_id AND m.id <> NEW.id AND m.state = 'cancelled'),
        '$.discarded', (SELECT count(*) FROM porter_jobs m WHERE m.batch_id = NEW.batch_id AND m.id <> NEW.id AND m.state = 'discarded'))
    WHERE id = NEW.id AND id = (SELECT callback_id FROM porter_batches WHERE id = NEW.batch_id);
END;

-- A batch whose last job is deleted (retention, a bulk delete) goes with it.
CREATE TRIGGER porter_batches_emptied AFTER DELETE ON porter_jobs
WHEN OLD.batch_id IS NOT NULL
BEGIN
    DELETE FROM porter_batches
    WHERE id = OLD.batch_id
      AND NOT EXISTS (SELECT 1 FROM porter_jobs WHERE batch_id = OLD.batch_id);
END;
