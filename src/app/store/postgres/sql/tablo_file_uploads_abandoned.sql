-- One page of uploads begun longer ago than the grace ($1 seconds), in id order.
SELECT id, tablo_id, s3_key, size, created_at FROM tablo_file_uploads
WHERE created_at < porter_now() - $1::float8 * interval '1 second'
  -- `>=` and not the cursor: a row may have the nil uuid (see tablo_file_orphans.sql).
  AND id >= COALESCE($2::uuid, '00000000-0000-0000-0000-000000000000') AND id IS DISTINCT FROM $2::uuid
ORDER BY id
LIMIT $3
