-- porter bench's baseline only: the least an insert can be (defaults for every other column).
INSERT INTO porter_jobs (kind, queue, args) VALUES ('noop', ?1, '{}')
