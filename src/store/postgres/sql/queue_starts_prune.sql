-- The statement's time, as job_claim_limited.sql reads it (see there), not porter_now().
-- Starts of a queue older than its longest rate window ($2 ms) count for nothing any more.
-- Starts dated after that time were recorded under a clock since set back: they count as
-- started now, so they hold the queue for one window at most, not until the clock reaches
-- them again (review of 7 Dec: a queue limited to 5 a second stood still for the hour its
-- clock had been fast). The two parts touch different rows (before and after the time).
WITH clamped AS (
    UPDATE porter_queue_starts
    SET started_at = coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, statement_timestamp())
    WHERE queue = $1 AND started_at > coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, statement_timestamp())
)
DELETE FROM porter_queue_starts
WHERE queue = $1 AND started_at <= coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, statement_timestamp()) - $2::bigint * interval '1 millisecond'
