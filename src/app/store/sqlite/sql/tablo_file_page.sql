-- One page of a tablo's files, in id order (keyset paging on id, through tablo_files_tablo).
SELECT id, tablo_id, s3_key, size, created_at FROM tablo_files
WHERE tablo_id = ?1 AND id > coalesce(?2, '')
ORDER BY id
LIMIT ?3
