-- A clean shutdown removes its own registration, and with it those of workers silent for more
-- than a day: crashed ones, whose jobs the rescuer took back long ago.
DELETE FROM porter_workers
WHERE id = ?1 OR heartbeat_at < strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(), '-1 day')
