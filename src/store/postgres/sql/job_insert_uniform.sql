-- job_insert_plain.sql for a batch of plain jobs that differ in their args only (one kind,
-- queue, priority, attempts and metadata: the usual large insert_many): those five go as
-- values ($1, $2, $4, $5, $6) and the args ($3) as the one array, and the clock is read once
-- (the statement's: see job_insert.sql).
-- Returns what job_insert_plain.sql returns.
WITH n AS MATERIALIZED (SELECT coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, clock_timestamp()) AS now),
inserted AS (
    INSERT INTO porter_jobs (kind, queue, args, priority, max_attempts, metadata, created_at, scheduled_at)
    SELECT $1::text, $2::text, args, $4::smallint, $5::int, $6::jsonb, n.now, n.now
    FROM n, unnest($3::jsonb[]) WITH ORDINALITY AS t(args, ord)
    ORDER BY ord
    RETURNING id
)
SELECT coalesce(array_agg(id ORDER BY id), '{}') AS ids, (SELECT now FROM n) AS at FROM inserted
