-- One page of uploads begun longer ago than the grace ($1 seconds), in id order.
SELECT id, tablo_id, s3_key, size, created_at FROM tablo_file_uploads
WHERE created_at < porter_now() - $1::float8 * interval '1 second'
  AND id > COALESCE($2::uuid, '00000000-0000-0000-0000-000000000000')
ORDER BY id
LIMIT $3
