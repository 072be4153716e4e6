-- Only while the upload is still past the grace: the one that just committed is gone already.
DELETE FROM tablo_file_uploads
WHERE id = ?1 AND created_at < strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(), ?2)
