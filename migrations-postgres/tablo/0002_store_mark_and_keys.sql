-- The object store's mark and the lookups by key, PostgreSQL flavour: same tables and meaning
-- as migrations-sqlite/tablo/0002_store_mark_and_keys.sql (see there).
CREATE TABLE IF NOT EXISTS tablo_store_mark (
    singleton  INTEGER PRIMARY KEY CHECK (singleton = 1),
    mark       UUID NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Hash indexes: a B-tree entry holds at most about 2.7 kB, and keys are text of any length
-- (rows another program writes); the lookups are by equality only.
CREATE INDEX IF NOT EXISTS tablo_files_key ON tablo_files USING hash (s3_key);
CREATE INDEX IF NOT EXISTS tablo_file_uploads_key ON tablo_file_uploads USING hash (s3_key);
