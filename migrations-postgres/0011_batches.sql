-- Batches (issue 16.3). Same tables, columns and meaning as migrations-sqlite/0011_batches.sql
-- (see there); the differences are commented below.
-- IF NOT EXISTS: a schema reset that drops porter_jobs but not this table migrates again.
CREATE TABLE IF NOT EXISTS porter_batches (
    id          BIGSERIAL   PRIMARY KEY,
    callback_id BIGINT,
    on_success  BOOLEAN     NOT NULL,
    members     INTEGER     NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

ALTER TABLE porter_jobs ADD COLUMN batch_id BIGINT;
CREATE INDEX porter_jobs_batch ON porter_jobs (batch_id, state) WHERE batch_id IS NOT NULL;

-- Difference: concurrent ends of the last members in different transactions (READ
-- COMMITTED). Each member's end updates the callback's row (0007's trigger: waiting_for - 1),
-- so they take turns on that row, and the one that makes it due sees waiting_for = 1 only
-- once every other member's end has committed. This function runs in that transaction, after
-- that update, and its count is a new statement with a new snapshot: it sees every member
-- final, and runs once, since the callback leaves `pending` once.
CREATE OR REPLACE FUNCTION porter_batch_callback_due() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    UPDATE porter_jobs c SET args = c.args || (
        SELECT jsonb_build_object(
                   'completed', count(*) FILTER (WHERE m.state = 'completed'),
                   'cancelled', count(*) FILTER (WHERE m.state = 'cancelled'),
                   'discarded', count(*) FILTER (WHERE m.state = 'discarded'))
        FROM porter_jobs m WHERE m.batch_id = NEW.batch_id AND m.id <> NEW.id)
    WHERE c.id = NEW.id AND c.id = (SELECT callback_id FROM porter_batches WHERE id = NEW.batch_id);
    RETURN NULL;
END
$fn$;

CREATE TRIGGER porter_batch_callback_due AFTER UPDATE OF state ON porter_jobs
FOR EACH ROW
WHEN (OLD.state = 'pending' AND NEW.state IN ('available','scheduled') AND NEW.batch_id IS NOT NULL)
EXECUTE FUNCTION porter_batch_callback_due();

-- As for workflows (0010): two deletes of a batch's last two jobs at once may leave its row.
CREATE OR REPLACE FUNCTION porter_batch_emptied() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    DELETE FROM porter_batches
    WHERE id = OLD.batch_id
      AND NOT EXISTS (SELECT 1 FROM porter_jobs WHERE batch_id = OLD.batch_id);
    RETURN NULL;
END
$fn$;

CREATE TRIGGER porter_batches_emptied AFTER DELETE ON porter_jobs
FOR EACH ROW
WHEN (OLD.batch_id IS NOT NULL)
EXECUTE FUNCTION porter_batch_emptied();
