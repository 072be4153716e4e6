-- A workflow's row (its steps are inserted after it, in the same transaction), created by the
-- statement's clock (see job_insert.sql).
INSERT INTO porter_workflows (name, created_at) VALUES ($1, coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, clock_timestamp()))
RETURNING id
