-- SQLite's own clock, not porter_now(): the bookkeeping records when it really happened, and a
-- caller's own connection may not have porter_now() registered.
INSERT INTO porter_migrations (set_name, version, name, applied_at, checksum)
VALUES (?1, ?2, ?3, strftime('%Y-%m-%dT%H:%M:%fZ','now'), ?4);
