-- Many jobs that may wait for parents (not in a sequence) in one statement, with how each starts
-- already decided by the caller from its parents' states: the batch form of job_insert.sql, for
-- the steps of a workflow and jobs given parents. /*ROWS*/ stands for the rows,
-- `(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)` each, as many as the statement carries (at most
-- SQLITE_MAX_VARIABLE_NUMBER variables in all; the code cuts a larger batch). Per row: kind,
-- queue, args, an absolute due time or NULL, a modifier like '+30.000 seconds' for a delay or
-- NULL, priority, max_attempts, unique key, metadata, concurrency key, parents not yet
-- satisfied, the state it starts in ('pending', 'cancelled') or NULL, that cancel's reason,
-- whether it starts marked as having dependents, the workflow and step it starts tagged as.
-- The clock is read once for the statement. Rows are inserted in the order given, so ids ascend
-- in input order.
-- A unique key held by an unfinished job (or by an earlier row of this statement) inserts
-- nothing for that row (no error): the caller then reads the holder with job_get_unique.sql.
-- Only what the database decided comes back; the rest of each row is what the caller gave.
INSERT INTO porter_jobs (kind, queue, args, state, priority, max_attempts, created_at, scheduled_at, unique_key, metadata,
                         concurrency_key, waiting_for, finalized_at, errors, has_dependents, workflow_id, workflow_step)
SELECT kind, queue, args, COALESCE(hold, CASE WHEN due <= now THEN 'available' ELSE 'scheduled' END), priority,
       max_attempts, now, due, unique_key, metadata, concurrency_key, waiting_for,
       CASE WHEN hold = 'cancelled' THEN now END,
       CASE WHEN error IS NULL THEN '[]' ELSE json_array(json_object('attempt', 0, 'at', now, 'error', error)) END,
       has_dependents, workflow_id, workflow_step
FROM (
    SELECT n.now, v.column1 AS kind, v.column2 AS queue, v.column3 AS args,
           COALESCE(v.column4, CASE WHEN v.column5 IS NULL THEN n.now
                                    ELSE strftime('%Y-%m-%dT%H:%M:%fZ', n.now, v.column5) END) AS due,
           v.column6 AS priority, v.column7 AS max_attempts, v.column8 AS unique_key, v.column9 AS metadata,
           v.column10 AS concurrency_key, v.column11 AS waiting_for, v.column12 AS hold, v.column13 AS error,
           v.column14 AS has_dependents, v.column15 AS workflow_id, v.column16 AS workflow_step
    FROM (SELECT porter_now() AS now) AS n, (VALUES /*ROWS*/) AS v
)
WHERE true -- SQLite needs a WHERE here to read the ON CONFLICT below as an upsert
ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND state IN ('available','scheduled','running','retryable','pending')
DO NOTHING
RETURNING id, state, created_at, scheduled_at, unique_key, errors, finalized_at
