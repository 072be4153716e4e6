-- The statement's time, as job_claim_limited.sql reads it (see there), not porter_now().
-- Starts of a queue older than its longest rate window ($2 ms) count for nothing any more.
DELETE FROM porter_queue_starts
WHERE queue = $1 AND started_at <= coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, statement_timestamp()) - $2::bigint * interval '1 millisecond'
