-- A whole batch is one statement over arrays (no limit on binds, where SQLite's multi-row
-- VALUES in job_insert_rows.sql is cut at its variable limit), in input order (ORDER BY ord,
-- so ids ascend in input order; the planner knows unnest WITH ORDINALITY is in that order
-- and sorts nothing).
-- $6 is an absolute due time or NULL; $7 a delay in seconds (0 when none). $10 concurrency
-- keys, $11 sequence keys, $12 parents not yet satisfied, $13 the state a waiting job starts in
-- ('pending', or 'cancelled' when a parent already failed) or NULL, $14 that cancel's reason,
-- $15 whether it starts marked as having dependents, $16 and $17 the workflow and step it
-- starts tagged as (NULL for a job outside a workflow, or one tagged after its insert).
-- A unique key held by an unfinished job (or by an earlier row of this batch) inserts nothing
-- for that row (no error): the caller then reads the holder with job_get_unique.sql.
-- Returns only what the database decides (and the unique key, to match rows to jobs); the
-- driver has the rest from what it sent.
-- The times count from this statement, read once (a test's clock, porter.now, if set): not
-- porter_now(), which is now(), the start of the transaction. In a caller's transaction
-- (`Client::insert_tx_pg`) that came after the caller's own work: a job to run 60 s from its
-- insert was due sooner by as long as that work took, and created before it was inserted,
-- where SQLite counts from the insert (review of 8 Dec). The same in every job_insert_*.sql.
INSERT INTO porter_jobs (kind, queue, args, state, priority, max_attempts, created_at, scheduled_at, unique_key, metadata,
                         concurrency_key, sequence_key, waiting_for, finalized_at, errors,
                         has_dependents, workflow_id, workflow_step)
SELECT kind, queue, args,
       COALESCE(hold, CASE WHEN due <= now THEN 'available' ELSE 'scheduled' END),
       priority, max_attempts, now, due, unique_key, metadata,
       concurrency_key, sequence_key, waiting_for, CASE WHEN hold = 'cancelled' THEN now END,
       CASE WHEN hold_error IS NULL THEN '[]'::jsonb
            ELSE jsonb_build_array(jsonb_build_object('attempt', 0, 'at', now, 'error', hold_error)) END,
       has_dependents, workflow_id, workflow_step
FROM (
    SELECT t.*, n.now, COALESCE(t.due_at, n.now + t.delay_secs * interval '1 second') AS due
    FROM (SELECT coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, clock_timestamp()) AS now) n,
         unnest($1::text[], $2::text[], $3::jsonb[], $4::smallint[], $5::int[],
                $6::timestamptz[], $7::float8[], $8::text[], $9::jsonb[],
                $10::text[], $11::text[], $12::int[], $13::text[], $14::text[],
                $15::bool[], $16::bigint[], $17::text[])
         WITH ORDINALITY AS t(kind, queue, args, priority, max_attempts, due_at, delay_secs, unique_key, metadata,
                              concurrency_key, sequence_key, waiting_for, hold, hold_error,
                              has_dependents, workflow_id, workflow_step, ord)
) j
ORDER BY ord
ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND state IN ('available','scheduled','running','retryable','pending')
DO NOTHING
RETURNING id, state, created_at, scheduled_at, unique_key, errors, finalized_at
