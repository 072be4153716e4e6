-- Starts of a queue older than its longest rate window (?2, '-3600.000 seconds') count for
-- nothing any more.
DELETE FROM porter_queue_starts
WHERE queue = ?1 AND started_at <= strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(), ?2)
