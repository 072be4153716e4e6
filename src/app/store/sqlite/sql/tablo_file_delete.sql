-- Only while the tablo is still gone: a file whose tablo came back is no orphan.
DELETE FROM tablo_files
WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM tablos t WHERE t.id IN (tablo_files.tablo_id, lower(tablo_files.tablo_id)))
