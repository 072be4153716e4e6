-- Enqueue from any language (issue 16.4): porter_enqueue(kind, args, ...) inserts a job from
-- plain SQL (psql, a trigger, any client library) with the checks, the unique-key outcome and
-- the wake-up of the library's insert (src/store/mod.rs JobInsertParams::new, job_insert.sql,
-- queue_notify.sql), and the same messages where it can. SQLite has no stored functions: its
-- migration of this number only says so, and the README documents the plain INSERT there.
--
--   SELECT * FROM porter_enqueue('send_email', '{"to": "ada@example.com"}');
--   SELECT * FROM porter_enqueue('report', '{}', queue => 'reports', priority => 2,
--                                unique_key => 'report:2026-11-30');      -- -> id, inserted
--
-- Every option is optional; NULL means its default, as an unset InsertOpts field does. A
-- refusal raises invalid_parameter_value (SQLSTATE 22023) with the library's words ("invalid
-- kind: ...") and writes nothing. args may be any JSON value (objects by convention), as in the
-- library. NUL characters cannot reach it: PostgreSQL's text and jsonb refuse them on input.
-- OR REPLACE: a schema reset that dropped porter's tables may leave the function behind.
CREATE OR REPLACE FUNCTION porter_enqueue(
    kind            text,
    args            jsonb       DEFAULT '{}',
    queue           text        DEFAULT 'default',
    priority        integer     DEFAULT 1,
    max_attempts    integer     DEFAULT 25,
    scheduled_at    timestamptz DEFAULT NULL,
    unique_key      text        DEFAULT NULL,
    concurrency_key text        DEFAULT NULL,
    metadata        jsonb       DEFAULT '{}',
    OUT id          bigint,
    OUT inserted    boolean
)
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_column
DECLARE
    -- Parameters are read through these (or qualified), never by their bare names inside a
    -- statement on porter_jobs, whose columns have the same names.
    q        text    := coalesce(porter_enqueue.queue, 'default');
    prio     integer := coalesce(porter_enqueue.priority, 1);
    attempts integer := coalesce(porter_enqueue.max_attempts, 25);
    meta     jsonb   := coalesce(porter_enqueue.metadata, '{}');
    due      timestamptz;
    doc      jsonb;
    what     text;
    name     text;
    shown    text;
    size     bigint;
    new_id   bigint;
    holder   bigint;
BEGIN
    -- The library's order of checks (JobInsertParams::new), so a call with several faults is
    -- refused for the same one.
    FOREACH what IN ARRAY ARRAY['kind', 'queue'] LOOP
        name := CASE what WHEN 'kind' THEN porter_enqueue.kind ELSE q END;
        IF name IS NULL OR NOT (name COLLATE "C" ~ '^[a-z0-9_.-]{1,64}$') THEN
            -- The name quoted as the library's message quotes it (Rust's {:?}): control
            -- characters as \n, \t, \r or \u{7}.
            SELECT CASE WHEN name IS NULL THEN 'NULL' ELSE '"' || coalesce(string_agg(CASE
                       WHEN c = '"' THEN '\"'
                       WHEN c = '\' THEN '\\'
                       WHEN c = E'\n' THEN '\n'
                       WHEN c = E'\r' THEN '\r'
                       WHEN c = E'\t' THEN '\t'
                       WHEN ascii(c) < 32 OR ascii(c) BETWEEN 127 AND 159 THEN '\u{' || to_hex(ascii(c)) || '}'
                       ELSE c END, '' ORDER BY n), '') || '"' END
            INTO shown FROM regexp_split_to_table(name, '') WITH ORDINALITY AS t(c, n)
            WHERE c <> ''; -- an empty name splits into one empty piece
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = format(
                'invalid %s: %s must match ^[a-z0-9_.-]{1,64}$ (lower-case letters, digits, ''_'', ''.'', ''-'')',
                what, shown);
        END IF;
    END LOOP;
    IF prio NOT BETWEEN 1 AND 4 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = format(
            'invalid priority: %s is outside 1..4 (1 is the highest)', prio);
    END IF;
    IF attempts NOT BETWEEN 1 AND 1000000 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = format(
            'invalid max_attempts: %s is outside 1..1000000', attempts);
    END IF;
    IF octet_length(porter_enqueue.unique_key) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'invalid unique_key: must be 1 to 255 bytes';
    END IF;
    IF octet_length(porter_enqueue.concurrency_key) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'invalid concurrency_key: must be 1 to 255 bytes';
    END IF;
    IF jsonb_typeof(meta) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'invalid metadata: must be a JSON object';
    END IF;
    IF meta ? 'cancel_requested_at' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE =
            'invalid metadata: cancel_requested_at is reserved: porter sets it when a running job is cancelled';
    END IF;
    IF porter_enqueue.args IS NULL THEN
        -- The library takes a JSON value, never "none"; JSON null is 'null'::jsonb.
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'invalid args: must be JSON, not SQL NULL (''{}'' for none)';
    END IF;
    IF porter_enqueue.scheduled_at IS NOT NULL AND NOT (porter_enqueue.scheduled_at
            BETWEEN '1970-01-01T00:00:00Z'::timestamptz AND '9999-12-31T23:59:59.999Z'::timestamptz) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = format(
            'invalid scheduled_at: %s is outside the times porter stores (1970-01-01T00:00:00Z ..= 9999-12-31T23:59:59.999Z)',
            -- RFC 3339 in UTC with 0, 3 or 6 digits of fraction, as the library prints it.
            coalesce(to_char(porter_enqueue.scheduled_at AT TIME ZONE 'UTC',
                             CASE WHEN extract(microseconds FROM porter_enqueue.scheduled_at)::bigint % 1000000 = 0
                                  THEN 'YYYY-MM-DD"T"HH24:MI:SS"Z"'
                                  WHEN extract(microseconds FROM porter_enqueue.scheduled_at)::bigint % 1000 = 0
                                  THEN 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'
                                  ELSE 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"' END),
                     porter_enqueue.scheduled_at::text));
    END IF;
    -- The cap counts compact JSON, as the library does (serde_json). jsonb prints ", " and
    -- ": " where compact JSON has "," and ":", so its text is an upper bound: only a document
    -- over the cap in that form is walked to take the added spaces off (one per member's colon,
    -- one per comma between members and between array elements).
    FOREACH what IN ARRAY ARRAY['args', 'metadata'] LOOP
        doc := CASE what WHEN 'args' THEN porter_enqueue.args ELSE meta END;
        size := octet_length(doc::text);
        IF size > 1048576 THEN
            SELECT size - coalesce(sum(CASE jsonb_typeof(v)
                       WHEN 'object' THEN greatest(2 * (SELECT count(*) FROM jsonb_object_keys(v)) - 1, 0)
                       WHEN 'array' THEN greatest(jsonb_array_length(v) - 1, 0)
                       ELSE 0 END), 0)
            INTO size FROM jsonb_path_query(doc, 'strict $.**') AS v;
            IF size > 1048576 THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = format(
                    'invalid %s: are over 1048576 bytes (1 MiB) as JSON, the most a job carries; '
                    'store large payloads elsewhere (a file, an object) and pass a reference', what);
            END IF;
        END IF;
    END LOOP;

    due := coalesce(porter_enqueue.scheduled_at, porter_now());
    -- As job_insert.sql: a unique key held by an unfinished job inserts nothing, and that job
    -- is the answer; a holder that finished between the insert and the read frees its key,
    -- so the insert is tried again (READ COMMITTED: each statement here sees fresh commits).
    FOR round IN 1..5 LOOP
        INSERT INTO porter_jobs (kind, queue, args, state, priority, max_attempts, created_at,
                                 scheduled_at, unique_key, metadata, concurrency_key)
        VALUES (porter_enqueue.kind, q, porter_enqueue.args,
                CASE WHEN due <= porter_now() THEN 'available' ELSE 'scheduled' END,
                prio, attempts, porter_now(), due, porter_enqueue.unique_key, meta,
                porter_enqueue.concurrency_key)
        ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND state IN ('available','scheduled','running','retryable')
        DO NOTHING
        RETURNING porter_jobs.id INTO new_id;
        IF new_id IS NOT NULL THEN
            -- As queue_notify.sql: producers in every process LISTEN on porter_insert for
            -- their queue's name; delivered at commit, never for a rollback.
            PERFORM pg_notify('porter_insert', q);
            id := new_id;
            inserted := true;
            RETURN;
        END IF;
        SELECT j.id INTO holder FROM porter_jobs j
        WHERE j.unique_key = porter_enqueue.unique_key
          AND j.state IN ('available','scheduled','running','retryable');
        IF holder IS NOT NULL THEN
            id := holder;
            inserted := false;
            RETURN;
        END IF;
    END LOOP;
    RAISE EXCEPTION USING ERRCODE = 'serialization_failure', MESSAGE = format(
        'conflict: unique key %s kept changing hands while inserting; try again',
        to_json(porter_enqueue.unique_key)::text);
END
$fn$;

-- Tables resolve in the schema porter was migrated in (the first on the search path then),
-- whatever the caller's search path: `SELECT other_schema.porter_enqueue(...)` inserts into
-- other_schema's queue. pg_catalog stays first, as it always is unless named.
DO $do$
BEGIN
    EXECUTE format('ALTER FUNCTION porter_enqueue(text, jsonb, text, integer, integer, timestamptz, text, text, jsonb) '
                   'SET search_path = %I', current_schema());
END
$do$;
