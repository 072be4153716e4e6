INSERT INTO tablo_files (id, tablo_id, s3_key, size) VALUES (?1, ?2, ?3, ?4)
