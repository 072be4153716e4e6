-- job_insert.sql for a batch of jobs that are plain (see job_insert_plain.sql) but for waiting
-- for parents, being waited for, or being a workflow's steps (see the driver's
-- waiting_insert): the bulk of a workflow's insert. No due time, no key and none starting
-- cancelled, so no unique key to arbitrate (no ON CONFLICT), and a job starts pending exactly
-- when it waits for a parent ($7 > 0), available otherwise, as job_insert.sql would start it.
-- Ten arrays instead of seventeen, and one row back, as job_insert_plain.sql answers, instead
-- of seven columns per job. The 10,000 steps of `porter bench --workflow`'s chains (4 Dec):
-- 39 ms binding and 64 ms executing in the server, against 51 and 114 ms through job_insert.sql.
WITH n AS MATERIALIZED (SELECT coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, clock_timestamp()) AS now),
inserted AS (
    INSERT INTO porter_jobs (kind, queue, args, state, priority, max_attempts, metadata, created_at, scheduled_at,
                             waiting_for, has_dependents, workflow_id, workflow_step)
    SELECT kind, queue, args, CASE WHEN waiting_for > 0 THEN 'pending' ELSE 'available' END,
           priority, max_attempts, metadata, n.now, n.now, waiting_for, has_dependents, workflow_id, workflow_step
    FROM n,
         unnest($1::text[], $2::text[], $3::jsonb[], $4::smallint[], $5::int[], $6::jsonb[],
                $7::int[], $8::bool[], $9::bigint[], $10::text[])
         WITH ORDINALITY AS t(kind, queue, args, priority, max_attempts, metadata,
                              waiting_for, has_dependents, workflow_id, workflow_step, ord)
    ORDER BY ord
    RETURNING id
)
SELECT coalesce(array_agg(id ORDER BY id), '{}') AS ids, (SELECT now FROM n) AS at FROM inserted
