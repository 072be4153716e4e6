-- The filter shared by job_search, job_search_ids and job_count_matching: $1 an array of
-- states (empty for all), $2 kind, $3 queue, $4 text to find in args, $5 only ids below, $6
-- only ids up to (NULL: no bound).
-- args is jsonb: the search runs over its text form (a space after ':' and ','), where SQLite
-- searches the JSON as inserted, so values match on both. strpos: no LIKE wildcards to escape.
WHERE (cardinality($1::text[]) = 0 OR state = ANY($1::text[]))
  AND ($2::text IS NULL OR kind = $2)
  AND ($3::text IS NULL OR queue = $3)
  AND ($4::text IS NULL OR strpos(args::text, $4) > 0)
  AND ($5::bigint IS NULL OR id < $5)
  AND ($6::bigint IS NULL OR id <= $6)
