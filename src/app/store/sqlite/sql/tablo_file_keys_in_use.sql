-- Of the keys ?1 (a JSON array), those a file of a tablo that exists names, or an upload begun
-- within the grace (?2, '-3600.000 seconds'): their objects are not an orphan's to delete. (A
-- tablo named in capitals too: see tablo_file_orphans.sql.)
SELECT DISTINCT k.value FROM json_each(?1) k
WHERE EXISTS (SELECT 1 FROM tablo_files f JOIN tablos t ON t.id IN (f.tablo_id, lower(f.tablo_id))
              WHERE f.s3_key = k.value)
   OR EXISTS (SELECT 1 FROM tablo_file_uploads u
              WHERE u.s3_key = k.value AND u.created_at >= strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(), ?2))
