-- A batch's callback retried by hand while it waits to run again (failed and `retryable`, or
-- snoozed and `scheduled`) gets the members' counts as they stand, as one retried after it
-- ended does (0038). Before, the trigger ran only when a callback left `pending` or an end, so a
-- callback retried from its backoff kept the counts of its first run: after an admin retried a
-- discarded member and it completed, the callback still ran with `discarded: 1`. The trigger
-- now also runs when a batch's callback leaves `retryable` or `scheduled` for `available` or
-- `scheduled`: a backoff or a snooze that comes due recounts as well. Of the jobs leaving those
-- two states, only those whose args name their batch (a callback's do; src/batch.rs) run the
-- function: the batch's members come due in bulk (a backoff, a future run-at), and each
-- running the function's lookups made promoting 100,000 of them 3.5 times as slow (review of
-- the first version). The function is 0011's.
-- Same change on SQLite: migrations-sqlite/0060_callback_recounted_from_a_wait.sql.
DROP TRIGGER porter_batch_callback_due ON porter_jobs;
CREATE TRIGGER porter_batch_callback_due AFTER UPDATE OF state ON porter_jobs
FOR EACH ROW
WHEN ((OLD.state IN ('pending','completed','cancelled','discarded')
       OR (OLD.state IN ('retryable','scheduled') AND NEW.args ? 'batch_id'))
      AND NEW.state IN ('available','scheduled') AND NEW.batch_id IS NOT NULL)
EXECUTE FUNCTION porter_batch_callback_due();
