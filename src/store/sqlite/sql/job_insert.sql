-- One job at a time, for batches with jobs of a sequence: each reads what the previous one
-- inserted. Batches of jobs that wait for nothing go through job_insert_rows.sql, those that wait
-- only for parents through job_insert_held_rows.sql.
-- ?4 is an absolute due time or NULL; ?5 a modifier like '+30.000 seconds' for a delay, or NULL
-- for none. The clock is formatted once per row (as `now`) where the plain VALUES form
-- formatted it four times, which showed in profiles of single inserts.
-- ?10 concurrency key, ?11 sequence key, ?12 parents not yet satisfied, ?13 the state a waiting
-- job starts in ('pending', or 'cancelled' when a parent already failed) or NULL, ?14 that
-- cancel's reason, ?15 whether it starts marked as having dependents, ?16 and ?17 the workflow
-- and step it starts tagged as (NULL for a job outside a workflow).
-- A unique key held by an unfinished job makes this insert nothing (no error): the caller then
-- reads the holder with job_get_unique.sql.
INSERT INTO porter_jobs (kind, queue, args, state, priority, max_attempts, created_at, scheduled_at, unique_key, metadata,
                         concurrency_key, sequence_key, waiting_for, finalized_at, errors,
                         has_dependents, workflow_id, workflow_step)
SELECT ?1, ?2, ?3, COALESCE(?13, CASE WHEN due <= now THEN 'available' ELSE 'scheduled' END), ?6, ?7, now, due, ?8, ?9,
       ?10, ?11, ?12, CASE WHEN ?13 = 'cancelled' THEN now END,
       CASE WHEN ?14 IS NULL THEN '[]' ELSE json_array(json_object('attempt', 0, 'at', now, 'error', ?14)) END,
       ?15, ?16, ?17
FROM (
    SELECT now, COALESCE(?4, CASE WHEN ?5 IS NULL THEN now ELSE strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(), ?5) END) AS due
    FROM (SELECT porter_now() AS now)
)
WHERE true -- SQLite needs a WHERE here to read the ON CONFLICT below as an upsert
ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND state IN ('available','scheduled','running','retryable','pending')
DO NOTHING
RETURNING *
