-- porter's own migration bookkeeping, for every set (src/store/migrations.rs). Never
-- PRAGMA user_version: that is the application's, which shares the file.
CREATE TABLE IF NOT EXISTS porter_migrations (
    set_name   TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    name       TEXT    NOT NULL,
    applied_at TEXT    NOT NULL,
    -- migrations::checksum of the SQL applied (NULL: recorded before 7 Dec, or adopted).
    checksum   TEXT,
    PRIMARY KEY (set_name, version)
);
