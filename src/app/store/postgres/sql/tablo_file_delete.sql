-- Only while the tablo is still gone: a file whose tablo came back is no orphan.
-- Differs from SQLite (one id per statement inside its one writer): all ids in one statement.
DELETE FROM tablo_files
WHERE id = ANY($1::uuid[]) AND NOT EXISTS (SELECT 1 FROM tablos t WHERE t.id = tablo_files.tablo_id)
