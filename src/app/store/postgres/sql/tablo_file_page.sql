-- One page of a tablo's files, in id order (keyset paging on id, through tablo_files_tablo).
SELECT id, tablo_id, s3_key, size, created_at FROM tablo_files
-- From the nil uuid on when there is no cursor (`>=`: a row may have that id; until 7 Dec it
-- was passed over), past the cursor otherwise.
WHERE tablo_id = $1 AND id >= coalesce($2, '00000000-0000-0000-0000-000000000000'::uuid)
  AND id IS DISTINCT FROM $2
ORDER BY id
LIMIT $3
