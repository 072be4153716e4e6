-- porter schema, SQLite flavour. Same tables and meaning as migrations-postgres/0001_init.sql.
-- Times are TEXT in one fixed format, '%Y-%m-%dT%H:%M:%fZ' (UTC, milliseconds), so that text
-- comparison is time comparison and every value comes from SQLite's own clock ('now').

CREATE TABLE porter_jobs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT, -- AUTOINCREMENT: ids never reused after deletes
    kind          TEXT    NOT NULL,
    queue         TEXT    NOT NULL DEFAULT 'default',
    args          TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(args)),
    state         TEXT    NOT NULL DEFAULT 'available'
                  CHECK (state IN ('available','scheduled','running','retryable','completed','cancelled','discarded')),
    priority      INTEGER NOT NULL DEFAULT 1 CHECK (priority BETWEEN 1 AND 4),
    attempt       INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL DEFAULT 25 CHECK (max_attempts >= 1),
    errors        TEXT    NOT NULL DEFAULT '[]',
    created_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    scheduled_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    attempted_at  TEXT,
    finalized_at  TEXT,
    attempted_by  TEXT,
    unique_key    TEXT,
    metadata      TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(metadata))
);

-- The claim walks this index in order: state = 'available', one queue, priority, due time, id.
CREATE INDEX porter_jobs_fetch ON porter_jobs (state, queue, priority, scheduled_at, id);
-- Scheduled and retryable jobs that have come due are promoted to available from this index.
CREATE INDEX porter_jobs_due ON porter_jobs (queue, scheduled_at) WHERE state IN ('scheduled','retryable');
-- Retention deletes finished jobs by age.
CREATE INDEX porter_jobs_finalized ON porter_jobs (state, finalized_at) WHERE finalized_at IS NOT NULL;
-- The rescuer looks at running jobs only.
CREATE INDEX porter_jobs_running ON porter_jobs (attempted_by, attempted_at) WHERE state = 'running';
-- One unfinished job per unique_key; finished jobs free the key.
CREATE UNIQUE INDEX porter_jobs_unique_key ON porter_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('available','scheduled','running','retryable');

CREATE TABLE porter_queues (
    name       TEXT PRIMARY KEY,
    paused_at  TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);

CREATE TABLE porter_workers (
    id           TEXT PRIMARY KEY,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    started_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    heartbeat_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);

-- One row per periodic job; last_slot (Unix milliseconds) only moves forward, and the job of a
-- slot is inserted in the same transaction that moves it, so a slot yields exactly one job.
CREATE TABLE porter_periodic (
    name      TEXT PRIMARY KEY,
    last_slot INTEGER NOT NULL
);

-- porter 0.1 also created the tablo app's tables here; they are the app's own set now (tablo/).
