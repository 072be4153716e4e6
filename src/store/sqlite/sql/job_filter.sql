-- The filter shared by job_search, job_search_ids and job_count_matching: ?1 a JSON array of
-- states ('[]' for all), ?2 kind, ?3 queue, ?4 text to find in args, ?5 only ids below, ?6
-- only ids up to (NULL: no bound).
-- args is stored as the JSON text it was inserted as: a plain substring search, where
-- PostgreSQL searches jsonb's own text (a space after ':' and ','), so values match on both.
WHERE (?1 = '[]' OR state IN (SELECT value FROM json_each(?1)))
  AND (?2 IS NULL OR kind = ?2)
  AND (?3 IS NULL OR queue = ?3)
  AND (?4 IS NULL OR instr(args, ?4) > 0)
  AND (?5 IS NULL OR id < ?5)
  AND (?6 IS NULL OR id <= ?6)
