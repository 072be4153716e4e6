-- porter's own migration bookkeeping, for every set (src/store/migrations.rs). Never
-- _sqlx_migrations: that is the application's, whose sqlx migrator would find porter's
-- versions there missing from its own.
CREATE TABLE IF NOT EXISTS porter_migrations (
    set_name   TEXT        NOT NULL,
    version    BIGINT      NOT NULL,
    name       TEXT        NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL,
    -- migrations::checksum of the SQL applied (NULL: recorded before 7 Dec, or adopted).
    checksum   TEXT,
    PRIMARY KEY (set_name, version)
);
