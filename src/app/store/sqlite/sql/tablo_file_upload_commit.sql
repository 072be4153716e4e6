-- The upload becomes a file of its tablo, unless it began longer ago than the grace (?2, a
-- modifier like '-3600.000 seconds'): then the cleanup owns it; or unless its tablo is gone:
-- then the upload is left for its caller (or, past the grace, the cleanup) to remove with its
-- object. Followed, in the same write transaction, by tablo_file_upload_forget.sql (SQLite's
-- DELETE cannot feed an INSERT, which Postgres does in one statement).
INSERT INTO tablo_files (id, tablo_id, s3_key, size, created_at)
SELECT u.id, u.tablo_id, u.s3_key, u.size, porter_now() FROM tablo_file_uploads u
WHERE u.id = ?1 AND u.created_at >= strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(), ?2)
  AND EXISTS (SELECT 1 FROM tablos t WHERE t.id = u.tablo_id)
RETURNING id, tablo_id, s3_key, size, created_at
