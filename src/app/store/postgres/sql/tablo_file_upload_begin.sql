INSERT INTO tablo_file_uploads (id, tablo_id, s3_key, size, created_at) VALUES ($1, $2, $3, $4, porter_now())
