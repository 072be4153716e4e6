-- The starts of a rate-limited queue's claimed jobs (?1: JSON array of their ids), at their
-- claim time.
INSERT INTO porter_queue_starts (queue, concurrency_key, started_at)
SELECT queue, concurrency_key, attempted_at FROM porter_jobs WHERE id IN (SELECT value FROM json_each(?1))
