-- A batch's callback retried by hand while it waits to run again (failed and `retryable`, or
-- snoozed and `scheduled`) gets the members' counts as they stand, as one retried after it
-- ended does (0038). Before, the trigger ran only when a callback left `pending` or an end, so a
-- callback retried from its backoff kept the counts of its first run: after an admin retried a
-- discarded member and it completed, the callback still ran with `discarded: 1`. The trigger
-- now also runs when a batch's job leaves `retryable` or `scheduled` for `available` or
-- `scheduled`: a backoff or a snooze that comes due recounts as well. The old states are
-- spelled as comparisons, not an IN list (which SQLite builds a lookup table for at each row:
-- 0021, 0038), since the test runs at every state change of a batch's job. The body is 0038's.
-- Same change on PostgreSQL: migrations-postgres/0060_callback_recounted_from_a_wait.sql.
DROP TRIGGER porter_batch_callback_due;
CREATE TRIGGER porter_batch_callback_due AFTER UPDATE OF state ON porter_jobs
WHEN NEW.batch_id IS NOT NULL
 AND (OLD.state = 'pending' OR OLD.state = 'completed' OR OLD.state = 'cancelled'
      OR OLD.state = 'discarded' OR OLD.state = 'retryable' OR OLD.state = 'scheduled')
 AND NEW.state IN ('available','scheduled')
BEGIN
    UPDATE porter_jobs
    SET args = json_set(args,
        '$.completed', (SELECT count(*) FROM porter_jobs m WHERE m.batch_id = NEW.batch_id AND m.id <> NEW.id AND m.state = 'completed'),
        '$.cancelled', (SELECT count(*) FROM porter_jobs m WHERE m.batch_id = NEW.batch_id AND m.id <> NEW.id AND m.state = 'cancelled'),
        '$.discarded', (SELECT count(*) FROM porter_jobs m WHERE m.batch_id = NEW.batch_id AND m.id <> NEW.id AND m.state = 'discarded'))
    WHERE id = NEW.id AND id = (SELECT callback_id FROM porter_batches WHERE id = NEW.batch_id);
END;
