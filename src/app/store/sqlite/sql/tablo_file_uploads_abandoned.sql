-- One page of uploads begun longer ago than the grace (?1, '-3600.000 seconds'), in id order.
-- Only rows whose ids are UUIDs as porter writes them (text, the upload's in lower case, by which
-- it pages and deletes): another program's other rows are left alone, as tablo_file_orphans.sql
-- leaves them (review of 6 Dec).
SELECT id, tablo_id, s3_key, size, created_at FROM tablo_file_uploads
WHERE created_at < strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(), ?1) AND id > coalesce(?2, '')
  AND typeof(id) = 'text' AND typeof(tablo_id) = 'text' AND typeof(s3_key) = 'text'
  AND id GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'
  AND tablo_id GLOB '[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]'
ORDER BY id
LIMIT ?3
