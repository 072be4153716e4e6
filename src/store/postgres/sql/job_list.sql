-- $4 is an array of states (empty for all).
SELECT * FROM porter_jobs
WHERE ($1::text IS NULL OR kind = $1)
  AND ($2::text IS NULL OR queue = $2)
  AND ($3::bigint IS NULL OR id < $3)
  AND (cardinality($4::text[]) = 0 OR state = ANY($4::text[]))
ORDER BY id DESC
LIMIT $5
