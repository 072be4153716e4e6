-- A batch's callback that an admin retries after it ended (an on_success callback cancelled by
-- a failed member, run anyway) gets the members' counts by end state as it becomes due, as one
-- due at the batch's end does: the trigger also runs when a callback leaves an end. Before, the
-- counts were written only when a callback left `pending`, and a retried one ran without them.
-- The body is 0021's. Same change on PostgreSQL: migrations-postgres/0038_retried_callback_counted.sql.
DROP TRIGGER porter_batch_callback_due;
CREATE TRIGGER porter_batch_callback_due AFTER UPDATE OF state ON porter_jobs
WHEN NEW.batch_id IS NOT NULL
 AND (OLD.state = 'pending' OR OLD.state = 'completed' OR OLD.state = 'cancelled' OR OLD.state = 'discarded')
 AND NEW.state IN ('available','scheduled')
BEGIN
    UPDATE porter_jobs
    SET args = json_set(args,
        '$.completed', (SELECT count(*) FROM porter_jobs m WHERE m.batch_id = NEW.batch_id AND m.id <> NEW.id AND m.state = 'completed'),
        '$.cancelled', (SELECT count(*) FROM porter_jobs m WHERE m.batch_id = NEW.batch_id AND m.id <> NEW.id AND m.state = 'cancelled'),
        '$.discarded', (SELECT count(*) FROM porter_jobs m WHERE m.batch_id = NEW.batch_id AND m.id <> NEW.id AND m.state = 'discarded'))
    WHERE id = NEW.id AND id = (SELECT callback_id FROM porter_batches WHERE id = NEW.batch_id);
END;
