-- Of the keys $1, those a file of a tablo that exists names, or an upload begun within the
-- grace ($2 seconds): their objects are not an orphan's to delete.
SELECT DISTINCT k FROM unnest($1::text[]) AS k
WHERE EXISTS (SELECT 1 FROM tablo_files f JOIN tablos t ON t.id = f.tablo_id WHERE f.s3_key = k)
   OR EXISTS (SELECT 1 FROM tablo_file_uploads u
              WHERE u.s3_key = k AND u.created_at >= porter_now() - $2::float8 * interval '1 second')
