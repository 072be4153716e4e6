-- A batch's row (its jobs are inserted after it, in the same transaction), created by the
-- statement's clock (see job_insert.sql).
INSERT INTO porter_batches (on_success, members, created_at) VALUES ($1, $2, coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, clock_timestamp()))
RETURNING id
