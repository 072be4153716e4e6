-- job_insert_waiting.sql for a batch of one kind, queue, priority, attempts and metadata (a
-- workflow's steps, usually): those five go as values ($1, $2, $4, $5, $6), as
-- job_insert_uniform.sql sends them for plain jobs, and the args ($3) and what differs per step
-- ($7-$10) as arrays. The 10,000 steps of `porter bench --workflow`'s chains (5 Dec): binding
-- took 31 ms of the insert through job_insert_waiting.sql, of which the 10,000 kinds, queues
-- and metadata were most. Returns what job_insert_waiting.sql returns.
WITH n AS MATERIALIZED (SELECT coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, clock_timestamp()) AS now),
inserted AS (
    INSERT INTO porter_jobs (kind, queue, args, state, priority, max_attempts, metadata, created_at, scheduled_at,
                             waiting_for, has_dependents, workflow_id, workflow_step)
    SELECT $1::text, $2::text, args, CASE WHEN waiting_for > 0 THEN 'pending' ELSE 'available' END,
           $4::smallint, $5::int, $6::jsonb, n.now, n.now, waiting_for, has_dependents, workflow_id, workflow_step
    FROM n,
         unnest($3::jsonb[], $7::int[], $8::bool[], $9::bigint[], $10::text[])
         WITH ORDINALITY AS t(args, waiting_for, has_dependents, workflow_id, workflow_step, ord)
    ORDER BY ord
    RETURNING id
)
SELECT coalesce(array_agg(id ORDER BY id), '{}') AS ids, (SELECT now FROM n) AS at FROM inserted
