-- ?4 is a JSON array of states ('[]' for all).
SELECT * FROM porter_jobs
WHERE (?1 IS NULL OR kind = ?1)
  AND (?2 IS NULL OR queue = ?2)
  AND (?3 IS NULL OR id < ?3)
  AND (?4 = '[]' OR state IN (SELECT value FROM json_each(?4)))
ORDER BY id DESC
LIMIT ?5
