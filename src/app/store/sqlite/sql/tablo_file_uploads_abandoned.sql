-- One page of uploads begun longer ago than the grace (?1, '-3600.000 seconds'), in id order.
SELECT id, tablo_id, s3_key, size, created_at FROM tablo_file_uploads
WHERE created_at < strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(), ?1) AND id > coalesce(?2, '')
ORDER BY id
LIMIT ?3
