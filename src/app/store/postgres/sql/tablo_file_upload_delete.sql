-- Only while the upload is still past the grace: one that just committed is gone already.
-- Differs from SQLite (one id per statement inside its one writer): all ids in one statement.
DELETE FROM tablo_file_uploads
WHERE id = ANY($1::uuid[]) AND created_at < porter_now() - $2::float8 * interval '1 second'
