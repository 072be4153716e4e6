-- A batch's callback that an admin retries after it ended (an on_success callback cancelled by
-- a failed member, run anyway) gets the members' counts by end state as it becomes due, as one
-- due at the batch's end does: the trigger also runs when a callback leaves an end. Before, the
-- counts were written only when a callback left `pending`, and a retried one ran without them.
-- The function is 0011's. Same change on SQLite: migrations-sqlite/0038_retried_callback_counted.sql.
DROP TRIGGER porter_batch_callback_due ON porter_jobs;
CREATE TRIGGER porter_batch_callback_due AFTER UPDATE OF state ON porter_jobs
FOR EACH ROW
WHEN (OLD.state IN ('pending','completed','cancelled','discarded')
      AND NEW.state IN ('available','scheduled') AND NEW.batch_id IS NOT NULL)
EXECUTE FUNCTION porter_batch_callback_due();
