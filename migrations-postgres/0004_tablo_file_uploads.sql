-- Uploads in progress: a row is written here before the object, and moves to tablo_files in
-- one transaction once the object is stored. A request dropped in between leaves its row
-- here, and the orphan cleanup deletes the object (if any) and then the row once the upload
-- is older than the grace period, so no stored object is ever named by no row.
CREATE TABLE tablo_file_uploads (
    id         UUID PRIMARY KEY,
    tablo_id   UUID NOT NULL,
    s3_key     TEXT NOT NULL,
    size       BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL
);
