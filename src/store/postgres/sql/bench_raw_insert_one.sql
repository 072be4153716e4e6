-- porter bench's baseline only: one bare job (its own transaction).
INSERT INTO porter_jobs (kind, queue, args) VALUES ('noop', $1, '{}')
