-- One page of files whose tablo is gone, in id order (keyset paging on id).
SELECT f.id, f.tablo_id, f.s3_key, f.size, f.created_at FROM tablo_files f
WHERE (?1 IS NULL OR f.id > ?1)
  AND (?2 IS NULL OR f.tablo_id = ?2)
  AND NOT EXISTS (SELECT 1 FROM tablos t WHERE t.id = f.tablo_id)
ORDER BY f.id
LIMIT ?3
