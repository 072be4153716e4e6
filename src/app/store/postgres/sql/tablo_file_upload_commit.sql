-- The upload becomes a file of its tablo in one statement, unless it began longer ago than the
-- grace ($2 seconds): then the cleanup owns it. Differs from SQLite, which needs two statements
-- in its write transaction. A cleanup deleting the same row at once waits for this one's row
-- lock and then finds it gone (or the other way round): never both.
WITH u AS (
    DELETE FROM tablo_file_uploads
    WHERE id = $1 AND created_at >= porter_now() - $2::float8 * interval '1 second'
    RETURNING id, tablo_id, s3_key, size
)
INSERT INTO tablo_files (id, tablo_id, s3_key, size, created_at)
SELECT id, tablo_id, s3_key, size, porter_now() FROM u
RETURNING id, tablo_id, s3_key, size, created_at
