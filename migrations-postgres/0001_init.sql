-- porter schema, PostgreSQL flavour. Same tables and meaning as migrations-sqlite/0001_init.sql.

CREATE TABLE porter_jobs (
    id            BIGSERIAL PRIMARY KEY,
    kind          TEXT        NOT NULL,
    queue         TEXT        NOT NULL DEFAULT 'default',
    args          JSONB       NOT NULL DEFAULT '{}',
    state         TEXT        NOT NULL DEFAULT 'available'
                  CHECK (state IN ('available','scheduled','running','retryable','completed','cancelled','discarded')),
    priority      SMALLINT    NOT NULL DEFAULT 1 CHECK (priority BETWEEN 1 AND 4),
    attempt       INTEGER     NOT NULL DEFAULT 0,
    max_attempts  INTEGER     NOT NULL DEFAULT 25 CHECK (max_attempts >= 1),
    errors        JSONB       NOT NULL DEFAULT '[]',
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    scheduled_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempted_at  TIMESTAMPTZ,
    finalized_at  TIMESTAMPTZ,
    attempted_by  TEXT,
    unique_key    TEXT,
    metadata      JSONB       NOT NULL DEFAULT '{}'
);

CREATE INDEX porter_jobs_fetch ON porter_jobs (state, queue, priority, scheduled_at, id);
CREATE INDEX porter_jobs_due ON porter_jobs (queue, scheduled_at) WHERE state IN ('scheduled','retryable');
CREATE INDEX porter_jobs_finalized ON porter_jobs (state, finalized_at) WHERE finalized_at IS NOT NULL;
CREATE INDEX porter_jobs_running ON porter_jobs (attempted_by, attempted_at) WHERE state = 'running';
CREATE UNIQUE INDEX porter_jobs_unique_key ON porter_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('available','scheduled','running','retryable');

CREATE TABLE porter_queues (
    name       TEXT PRIMARY KEY,
    paused_at  TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE porter_workers (
    id           TEXT PRIMARY KEY,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- last_slot is Unix milliseconds, as on SQLite.
CREATE TABLE porter_periodic (
    name      TEXT PRIMARY KEY,
    last_slot BIGINT NOT NULL
);

-- porter 0.1 also created the tablo app's tables here; they are the app's own set now (tablo/).
