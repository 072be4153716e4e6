-- A queue left without rate limits keeps no record of its starts.
DELETE FROM porter_queue_starts
WHERE queue = $1 AND NOT EXISTS (SELECT 1 FROM porter_queues WHERE name = $1
                                 AND (rate_limit IS NOT NULL OR rate_per_key_limit IS NOT NULL))
