-- The upload becomes a file of its tablo, unless it began longer ago than the grace (?2, a
-- modifier like '-3600.000 seconds'): then the cleanup owns it. Followed, in the same write
-- transaction, by tablo_file_upload_forget.sql (SQLite's DELETE cannot feed an INSERT, which
-- Postgres does in one statement).
INSERT INTO tablo_files (id, tablo_id, s3_key, size, created_at)
SELECT id, tablo_id, s3_key, size, porter_now() FROM tablo_file_uploads
WHERE id = ?1 AND created_at >= strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(), ?2)
RETURNING id, tablo_id, s3_key, size, created_at
