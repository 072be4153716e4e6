-- One page of files whose tablo is gone, in id order (keyset paging on id). The uuid order
-- here is byte order, the same as the order of SQLite's lower-case hyphenated text.
-- Two branches instead of `($2 IS NULL OR ...)`: each can walk its own index (the primary key,
-- or tablo_files_tablo for one tablo's files), and the branch whose one-time filter on $2
-- fails is skipped at run time. The nil uuid as the default cursor keeps `f.id >= ...`
-- sargable (an `OR $1 IS NULL` made the generic plan read and sort the whole table); `>=` and
-- not the cursor itself, since a row may have the nil uuid (until 7 Dec it was passed over).
(SELECT f.id, f.tablo_id, f.s3_key, f.size, f.created_at FROM tablo_files f
 WHERE $2::uuid IS NULL
   AND f.id >= COALESCE($1::uuid, '00000000-0000-0000-0000-000000000000') AND f.id IS DISTINCT FROM $1::uuid
   AND NOT EXISTS (SELECT 1 FROM tablos t WHERE t.id = f.tablo_id)
 ORDER BY f.id
 LIMIT $3)
UNION ALL
(SELECT f.id, f.tablo_id, f.s3_key, f.size, f.created_at FROM tablo_files f
 WHERE f.tablo_id = $2::uuid
   AND f.id >= COALESCE($1::uuid, '00000000-0000-0000-0000-000000000000') AND f.id IS DISTINCT FROM $1::uuid
   AND NOT EXISTS (SELECT 1 FROM tablos t WHERE t.id = f.tablo_id)
 ORDER BY f.id
 LIMIT $3)
ORDER BY id
LIMIT $3
