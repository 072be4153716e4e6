-- One page of files whose tablo is gone, in id order (keyset paging on id).
-- A file names its tablo as porter writes ids (lower case), or in capitals as another program
-- may (a UUID either way; PostgreSQL's uuid columns compare them alike): until 6 Dec such a
-- live file was taken for an orphan, its object deleted. (Both forms, not lower() of each
-- side: each is a look-up by the primary key.)
-- Only rows whose ids are UUIDs (the file's in lower case, as porter writes it and pages and
-- deletes by it; its tablo's in either case): another program's row with other ids could not
-- be read, and failed the page, so the pass ended there every hour and no orphan after it was
-- ever cleaned (review of 6 Dec); a file id in capitals, or stored as a BLOB, was deleted by
-- its lower-cased text (no row) and moved the cursor past other rows. Such rows are left
-- alone. A size or a time another program wrote otherwise is read leniently (file_from_row).
-- Two branches instead of `(?2 IS NULL OR ...)`, and '' as the default cursor instead of
-- `(?1 IS NULL OR ...)`, so that each branch seeks its index (the primary key, or
-- tablo_files_tablo for one tablo's files) rather than scanning from the start every page.
SELECT * FROM (
    SELECT f.id, f.tablo_id, f.s3_key, f.size, f.created_at FROM tablo_files f
    WHERE ?2 IS NULL AND f.id > coalesce(?1, '')
      AND NOT EXISTS (SELECT 1 FROM tablos t WHERE t.id IN (f.tablo_id, lower(f.tablo_id)))
      AND typeof(f.id) = 'text' AND typeof(f.tablo_id) = 'text' AND typeof(f.s3_key) = 'text'
      AND f.id GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'
      AND f.tablo_id GLOB '[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]'
    ORDER BY f.id
    LIMIT ?3
)
UNION ALL
SELECT * FROM (
    SELECT f.id, f.tablo_id, f.s3_key, f.size, f.created_at FROM tablo_files f
    WHERE f.tablo_id = ?2 AND f.id > coalesce(?1, '')
      AND NOT EXISTS (SELECT 1 FROM tablos t WHERE t.id IN (f.tablo_id, lower(f.tablo_id)))
      AND typeof(f.id) = 'text' AND typeof(f.tablo_id) = 'text' AND typeof(f.s3_key) = 'text'
      AND f.id GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'
      AND f.tablo_id GLOB '[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]'
    ORDER BY f.id
    LIMIT ?3
)
ORDER BY 1
LIMIT ?3
