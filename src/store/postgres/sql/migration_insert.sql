-- now(), not porter_now(): the bookkeeping records when it really happened, and porter_now()
-- does not exist before the core's second migration.
INSERT INTO porter_migrations (set_name, version, name, applied_at, checksum)
VALUES ($1, $2, $3, now(), $4);
