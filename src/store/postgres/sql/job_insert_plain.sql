-- job_insert.sql for a batch of plain jobs (no due time, no key, no parents, no workflow; see
-- the driver's plain_insert): six arrays instead of seventeen, every other column as the
-- table's defaults leave it but for the times (the statement's clock: see job_insert.sql).
-- Every job is inserted, available at once, in input order (ids ascend with ord). Returns one
-- row: the ids, in order, and the time the jobs were created and are due (one for all): a row
-- per job, each read on its own, took a third of a 20,000-job insert.
WITH n AS MATERIALIZED (SELECT coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, clock_timestamp()) AS now),
inserted AS (
    INSERT INTO porter_jobs (kind, queue, args, priority, max_attempts, metadata, created_at, scheduled_at)
    SELECT kind, queue, args, priority, max_attempts, metadata, n.now, n.now
    FROM n, unnest($1::text[], $2::text[], $3::jsonb[], $4::smallint[], $5::int[], $6::jsonb[])
         WITH ORDINALITY AS t(kind, queue, args, priority, max_attempts, metadata, ord)
    ORDER BY ord
    RETURNING id
)
SELECT coalesce(array_agg(id ORDER BY id), '{}') AS ids, (SELECT now FROM n) AS at FROM inserted
