-- The object store's mark (one row): an id the web writes as an object
-- (`porter-store-marks/{mark}`) into every store it uploads to. The orphan cleanup deletes
-- nothing in a store that lacks this database's mark: "not found" counts as deleted, so a
-- cleanup pointed at another store (an empty directory, memory://, another bucket) would
-- delete every orphan's row and leave its object, named by nothing, where the web keeps it.
CREATE TABLE IF NOT EXISTS tablo_store_mark (
    singleton  INTEGER PRIMARY KEY CHECK (singleton = 1),
    mark       TEXT NOT NULL, -- UUID, hyphenated lower case
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);

-- The cleanup leaves an object another row still names (a live tablo's file, an upload under
-- way): looked up by key.
CREATE INDEX IF NOT EXISTS tablo_files_key ON tablo_files (s3_key);
CREATE INDEX IF NOT EXISTS tablo_file_uploads_key ON tablo_file_uploads (s3_key);
