-- A clean shutdown removes its own registration, and with it those of workers silent for more
-- than a day: crashed ones, whose jobs the rescuer took back long ago.
DELETE FROM porter_workers
WHERE id = $1 OR heartbeat_at < porter_now() - interval '1 day'
