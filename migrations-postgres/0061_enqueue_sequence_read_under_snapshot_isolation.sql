-- A job of a sequence that porter_enqueue inserts in a caller's transaction at REPEATABLE READ
-- or SERIALIZABLE (an explicit BEGIN ISOLATION LEVEL, or a session's or role's default) is no
-- longer stranded. Its check whether the sequence is busy read the transaction's snapshot,
-- taken before the sequence's lock: a job that ended since still looked unfinished, the new job
-- waited `pending`, and nothing ever started it or the sequence's later jobs (review of 7 Dec).
-- Under READ COMMITTED the check is as it was (each statement sees what the lock's previous
-- holder committed); otherwise the job it finds is locked (FOR SHARE, in a block rolled back at
-- once, so that the lock does not keep claims off the job until the commit), which fails with a
-- serialization error (40001, the caller's to retry, as callers at those levels do) when it was
-- written since the snapshot, and a job that became active since fails the insert on
-- porter_jobs_sequence_active. At those levels the caller's role needs UPDATE on porter_jobs,
-- as a row lock does. The library's `_tx` insert reads the same way
-- (src/store/postgres/sql/job_sequence_busy_snapshot.sql).
--
-- porter_enqueue_once is 0058's with that change only. CREATE OR REPLACE clears its settings,
-- so they are set again below.

CREATE OR REPLACE FUNCTION porter_enqueue_once(
    kind            text,
    args            jsonb       DEFAULT '{}',
    queue           text        DEFAULT 'default',
    priority        integer     DEFAULT 1,
    max_attempts    integer     DEFAULT 25,
    scheduled_at    timestamptz DEFAULT NULL,
    unique_key      text        DEFAULT NULL,
    concurrency_key text        DEFAULT NULL,
    sequence_key    text        DEFAULT NULL,
    depends_on      bigint[]    DEFAULT NULL,
    after_any       boolean     DEFAULT false,
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
    q        text    := coalesce(porter_enqueue_once.queue, 'default');
    prio     integer := coalesce(porter_enqueue_once.priority, 1);
    attempts integer := coalesce(porter_enqueue_once.max_attempts, 25);
    meta     jsonb   := coalesce(porter_enqueue_once.metadata, '{}');
    seq      text    := porter_enqueue_once.sequence_key;
    any_end  boolean := coalesce(porter_enqueue_once.after_any, false);
    parents  bigint[];
    found_ids bigint[];
    states   text[];
    wake     text[];
    pstate   text;
    pid      bigint;
    ended    boolean[] := '{}';
    hold     text;
    hold_err text;
    waiting  integer := 0;
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
        name := CASE what WHEN 'kind' THEN porter_enqueue_once.kind ELSE q END;
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
    IF octet_length(porter_enqueue_once.unique_key) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'invalid unique_key: must be 1 to 255 bytes';
    END IF;
    IF octet_length(porter_enqueue_once.concurrency_key) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'invalid concurrency_key: must be 1 to 255 bytes';
    END IF;
    IF octet_length(seq) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'invalid sequence_key: must be 1 to 255 bytes';
    END IF;
    IF array_ndims(porter_enqueue_once.depends_on) > 1 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'invalid depends_on: a list of job ids, not an array of arrays';
    END IF;
    IF array_position(porter_enqueue_once.depends_on, NULL) IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'invalid depends_on: NULL is not a job id';
    END IF;
    -- Parents without repeats, in the order given (as the library keeps them).
    SELECT coalesce(array_agg(x ORDER BY n), '{}') INTO parents
    FROM (SELECT x, min(n) AS n FROM unnest(porter_enqueue_once.depends_on) WITH ORDINALITY AS u(x, n) GROUP BY x) d;
    IF cardinality(parents) > 10000 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = format(
            'invalid depends_on: %s parents; a job waits for at most 10000', cardinality(parents));
    END IF;
    IF any_end AND cardinality(parents) = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'invalid after_any: needs parents to wait for (depends_on, --after)';
    END IF;
    IF seq IS NOT NULL AND cardinality(parents) > 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE =
            'invalid sequence_key: a job waits either in a sequence or for parents (depends_on), not both';
    END IF;
    IF jsonb_typeof(meta) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'invalid metadata: must be a JSON object';
    END IF;
    IF meta ? 'cancel_requested_at' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE =
            'invalid metadata: cancel_requested_at is reserved: porter sets it when a running job is cancelled';
    END IF;
    IF porter_enqueue_once.args IS NULL THEN
        -- The library takes a JSON value, never "none"; JSON null is 'null'::jsonb.
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'invalid args: must be JSON, not SQL NULL (''{}'' for none)';
    END IF;
    -- What porter's reader cannot read back, then the due time, then the sizes: the library's
    -- order (JobInsertParams::new: refuse_unreadable, check_scheduled_at, json_size), so that a
    -- call with several faults is refused for the one the library names (0045: the due time
    -- came first, and each document's size before the other's depth).
    FOREACH what IN ARRAY ARRAY['args', 'metadata'] LOOP
        doc := CASE what WHEN 'args' THEN porter_enqueue_once.args ELSE meta END;
        -- What jsonb holds and porter's reader (serde_json) cannot read back: nesting past
        -- 127 levels (an array or object at level 127, the root being level 0), and a number
        -- past an f64's range. The library refuses the first (MAX_JSON_DEPTH) and cannot hold
        -- the second.
        IF jsonb_path_exists(doc, 'strict $.**{127 to last} ? (@.type() == "array" || @.type() == "object")') THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = format(
                'invalid %s: nest arrays and objects more than 127 levels deep, deeper than porter reads back', what);
        END IF;
        -- The range is serde_json's (correctly rounded, feature float_roundtrip): a number
        -- below 2^1024 - 2^970, half a step past the largest float, reads as that float
        -- (1.7976931348623158e308 among them, refused until 0045); from there on it is out
        -- of range.
        IF jsonb_path_exists(doc, 'strict $.** ? (@.type() == "number" && (@ >= 179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174497792 || @ <= -179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174497792))') THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = format(
                'invalid %s: hold a number past the range porter reads (a 64-bit float''s, about 1.8e308)', what);
        END IF;
    END LOOP;
    IF porter_enqueue_once.scheduled_at IS NOT NULL AND NOT (porter_enqueue_once.scheduled_at
            BETWEEN '1970-01-01T00:00:00Z'::timestamptz AND '9999-12-31T23:59:59.999Z'::timestamptz) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = format(
            'invalid scheduled_at: %s is outside the times porter stores (1970-01-01T00:00:00Z ..= 9999-12-31T23:59:59.999Z)',
            -- RFC 3339 in UTC with 0, 3 or 6 digits of fraction, as the library prints it.
            coalesce(to_char(porter_enqueue_once.scheduled_at AT TIME ZONE 'UTC',
                             CASE WHEN extract(microseconds FROM porter_enqueue_once.scheduled_at)::bigint % 1000000 = 0
                                  THEN 'YYYY-MM-DD"T"HH24:MI:SS"Z"'
                                  WHEN extract(microseconds FROM porter_enqueue_once.scheduled_at)::bigint % 1000 = 0
                                  THEN 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'
                                  ELSE 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"' END),
                     porter_enqueue_once.scheduled_at::text));
    END IF;
    -- The cap counts compact JSON, as the library does (serde_json). jsonb prints ", " and
    -- ": " where compact JSON has "," and ":", so its text is an upper bound: only a document
    -- over the cap in that form is walked to take the added spaces off (one per member's colon,
    -- one per comma between members and between array elements).
    FOREACH what IN ARRAY ARRAY['args', 'metadata'] LOOP
        doc := CASE what WHEN 'args' THEN porter_enqueue_once.args ELSE meta END;
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

    due := coalesce(porter_enqueue_once.scheduled_at, porter_now());
    -- How the job starts, as the library's insert of a job that may wait decides it
    -- (JobInsertParams::hold, insert_waiting in src/store/postgres/mod.rs), under the same
    -- locks (job_sequence_lock.sql, job_parents_mark.sql; why: migration 0007).
    IF seq IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(1886350450, hashtext(seq));
        IF current_setting('transaction_isolation') = 'read committed' THEN
            IF EXISTS (SELECT 1 FROM porter_jobs j WHERE j.sequence_key = seq
                       AND (j.state IN ('available','scheduled','running','retryable') OR j.state = 'pending')) THEN
                hold := 'pending';
            END IF;
        ELSE
            -- The caller's snapshot predates the lock (0061): the job found is locked, which
            -- fails with a serialization error when it was written since. The lock is only
            -- for that error: the block's end rolls it back (held on, a claim would pass the
            -- job over until the caller's commit).
            BEGIN
                PERFORM 1 FROM porter_jobs j WHERE j.sequence_key = seq
                    AND (j.state IN ('available','scheduled','running','retryable') OR j.state = 'pending')
                    LIMIT 1 FOR SHARE;
                IF FOUND THEN
                    hold := 'pending';
                END IF;
                RAISE EXCEPTION USING ERRCODE = 'PT001', MESSAGE = 'porter: the lock is let go';
            EXCEPTION WHEN SQLSTATE 'PT001' THEN
                NULL;
            END;
        END IF;
    END IF;
    IF cardinality(parents) > 0 THEN
        -- The parents' sequence locks before their rows, as job_parents_mark.sql takes them.
        PERFORM count(pg_advisory_xact_lock(1886350450, h))
        FROM (SELECT DISTINCT hashtext(j.sequence_key) AS h FROM porter_jobs j
              WHERE j.id = ANY(parents) AND j.sequence_key IS NOT NULL ORDER BY 1) keys;
        -- Held to the end of the transaction; a deadlock over them is porter_enqueue's to
        -- try again (0058).
        WITH p AS (SELECT j.id FROM porter_jobs j WHERE j.id = ANY(parents) ORDER BY j.id FOR UPDATE),
             marked AS (UPDATE porter_jobs j SET has_dependents = true FROM p WHERE j.id = p.id
                        RETURNING j.id, j.state, j.queue, j.scheduled_at)
        SELECT array_agg(marked.id), array_agg(marked.state),
               array_agg(DISTINCT marked.queue) FILTER (WHERE marked.state = 'available'
                   OR (marked.state IN ('scheduled', 'retryable') AND marked.scheduled_at <= porter_now()))
        INTO found_ids, states, wake FROM marked;
        -- Delivered at the commit, when these rows are free to claim (0043).
        PERFORM pg_notify('porter_insert', w) FROM unnest(wake) AS w;
        FOREACH pid IN ARRAY parents LOOP
            pstate := states[array_position(found_ids, pid)];
            IF pstate IS NULL THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = format(
                    'invalid depends_on: parent job %s does not exist (parents must be inserted first)', pid);
            END IF;
            IF NOT (pstate = 'completed' OR (any_end AND pstate IN ('completed','cancelled','discarded'))) THEN
                IF pstate IN ('completed','cancelled','discarded') AND hold_err IS NULL THEN
                    hold_err := format('parent job %s was %s', pid, pstate);
                END IF;
                waiting := waiting + 1;
            END IF;
            ended := ended || (pstate IN ('completed','cancelled','discarded'));
        END LOOP;
        IF hold_err IS NOT NULL THEN
            -- A parent already ended as the job cannot run after: it starts cancelled.
            hold := 'cancelled';
            waiting := 0;
            ended := array_fill(true, ARRAY[cardinality(parents)]);
        ELSIF waiting > 0 THEN
            hold := 'pending';
        END IF;
    END IF;
    -- As job_insert.sql: a unique key held by an unfinished job inserts nothing, and that job
    -- is the answer; a holder that finished between the insert and the read frees its key,
    -- so the insert is tried again (READ COMMITTED: each statement here sees fresh commits).
    FOR round IN 1..5 LOOP
        INSERT INTO porter_jobs (kind, queue, args, state, priority, max_attempts, created_at,
                                 scheduled_at, unique_key, metadata, concurrency_key, sequence_key,
                                 waiting_for, finalized_at, errors)
        VALUES (porter_enqueue_once.kind, q, porter_enqueue_once.args,
                coalesce(hold, CASE WHEN due <= porter_now() THEN 'available' ELSE 'scheduled' END),
                prio, attempts, porter_now(), due, porter_enqueue_once.unique_key, meta,
                porter_enqueue_once.concurrency_key, seq, waiting,
                CASE WHEN hold = 'cancelled' THEN porter_now() END,
                CASE WHEN hold_err IS NULL THEN '[]'::jsonb
                     ELSE jsonb_build_array(jsonb_build_object('attempt', 0, 'at', porter_now(), 'error', hold_err)) END)
        ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND state IN ('available','scheduled','running','retryable','pending')
        DO NOTHING
        RETURNING porter_jobs.id INTO new_id;
        IF new_id IS NOT NULL THEN
            IF cardinality(parents) > 0 THEN
                INSERT INTO porter_job_deps (child_id, parent_id, after_any, resolved)
                -- Resolved only for a job that starts cancelled: a waiting job's edges to
                -- parents that ended stay unresolved, so that such a parent retried while it
                -- waits is waited for again (0036), as the library inserts them.
                SELECT new_id, e.parent, any_end, hold IS NOT DISTINCT FROM 'cancelled'
                FROM unnest(parents, ended) AS e(parent, done);
            END IF;
            -- As queue_notify.sql: producers in every process LISTEN on porter_insert for
            -- their queue's name; delivered at commit, never for a rollback.
            PERFORM pg_notify('porter_insert', q);
            id := new_id;
            inserted := true;
            RETURN;
        END IF;
        SELECT j.id INTO holder FROM porter_jobs j
        WHERE j.unique_key = porter_enqueue_once.unique_key
          AND j.state IN ('available','scheduled','running','retryable','pending');
        IF holder IS NOT NULL THEN
            id := holder;
            inserted := false;
            RETURN;
        END IF;
    END LOOP;
    RAISE EXCEPTION USING ERRCODE = 'serialization_failure', MESSAGE = format(
        'conflict: unique key %s kept changing hands while inserting; try again',
        to_json(porter_enqueue_once.unique_key)::text);
END
$fn$;

DO $do$
BEGIN
    EXECUTE format('ALTER FUNCTION porter_enqueue_once(text, jsonb, text, integer, integer, timestamptz, text, text, text, bigint[], boolean, jsonb) '
                   'SET search_path = %I, pg_temp', current_schema());
END
$do$;
ALTER FUNCTION porter_enqueue_once(text, jsonb, text, integer, integer, timestamptz, text, text, text, bigint[], boolean, jsonb)
    SET standard_conforming_strings = on;
GRANT EXECUTE ON FUNCTION porter_enqueue_once(text, jsonb, text, integer, integer, timestamptz, text, text, text, bigint[], boolean, jsonb)
    TO PUBLIC;
