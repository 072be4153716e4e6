SELECT id, tablo_id, s3_key, size, created_at FROM tablo_files WHERE tablo_id = $1 ORDER BY id
