-- The tablo app's tables, a migration set of their own ("tablo" in porter_migrations), beside
-- the queue's. IF NOT EXISTS: databases of porter 0.1 have these tables already (its core
-- migrations 1 and 4 created them), and keep them as they are.

-- The first users' "tablos".
CREATE TABLE IF NOT EXISTS tablos (
    id         TEXT PRIMARY KEY, -- UUID, hyphenated lower case
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);

-- Their stored files. No foreign key to tablos on purpose: deleting a tablo leaves its files
-- behind as orphans, and the orphan cleanup deletes their objects before their rows.
CREATE TABLE IF NOT EXISTS tablo_files (
    id         TEXT PRIMARY KEY,
    tablo_id   TEXT NOT NULL,
    s3_key     TEXT NOT NULL,
    size       INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE INDEX IF NOT EXISTS tablo_files_tablo ON tablo_files (tablo_id, id);

-- Uploads in progress: a row is written here before the object, and moves to tablo_files in
-- one transaction once the object is stored. A request dropped in between leaves its row
-- here, and the orphan cleanup deletes the object (if any) and then the row once the upload
-- is older than the grace period, so no stored object is ever named by no row.
CREATE TABLE IF NOT EXISTS tablo_file_uploads (
    id         TEXT PRIMARY KEY,
    tablo_id   TEXT NOT NULL,
    s3_key     TEXT NOT NULL,
    size       INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
