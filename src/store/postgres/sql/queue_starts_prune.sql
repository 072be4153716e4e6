-- Starts of a queue older than its longest rate window ($2 ms) count for nothing any more.
DELETE FROM porter_queue_starts
WHERE queue = $1 AND started_at <= porter_now() - $2::bigint * interval '1 millisecond'
