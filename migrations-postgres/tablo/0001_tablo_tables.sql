-- The tablo app's tables, PostgreSQL flavour: same tables and meaning as
-- migrations-sqlite/tablo/0001_tablo_tables.sql (see there). IF NOT EXISTS: databases of
-- porter 0.1 have these tables already, and keep them as they are.

CREATE TABLE IF NOT EXISTS tablos (
    id         UUID PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS tablo_files (
    id         UUID PRIMARY KEY,
    tablo_id   UUID NOT NULL,
    s3_key     TEXT NOT NULL,
    size       BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS tablo_files_tablo ON tablo_files (tablo_id, id);

CREATE TABLE IF NOT EXISTS tablo_file_uploads (
    id         UUID PRIMARY KEY,
    tablo_id   UUID NOT NULL,
    s3_key     TEXT NOT NULL,
    size       BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL
);
