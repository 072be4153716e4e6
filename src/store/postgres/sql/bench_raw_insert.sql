-- porter bench's baseline only: a batch of $2 bare jobs in one statement, the data sent over
-- as an array like job_insert.sql does (defaults for every other column).
INSERT INTO porter_jobs (kind, queue, args)
SELECT 'noop', $1, a FROM unnest($2::jsonb[]) AS a
