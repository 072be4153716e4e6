-- The filter shared by job_search, job_search_ids and job_count_matching: $1 an array of
-- states (empty for all), $2 kind, $3 queue, $4 text to find in args, $5 only ids below, $6
-- only ids up to (NULL: no bound).
-- The states ($1) are tested one by one, `state = 'x' AND 'x' = ANY(...)`, not as
-- `state = ANY(...)`: since migration 0041 no index has `state` in its key, only a partial
-- index per group of states, and PostgreSQL proves a partial index's predicate from an OR of
-- equalities (a custom plan folds the arms not asked for away, and a bitmap OR reads the index
-- of each state asked for) but never from `= ANY(array)`, which scanned the table. The state
-- CHECK allows these eight states only.
-- args is jsonb: the search runs over its text form (a space after ':' and ','), where SQLite
-- searches the JSON as inserted, so values match on both. strpos: no LIKE wildcards to escape.
WHERE (cardinality($1::text[]) = 0
       OR (state = 'available' AND 'available' = ANY($1::text[]))
       OR (state = 'scheduled' AND 'scheduled' = ANY($1::text[]))
       OR (state = 'running' AND 'running' = ANY($1::text[]))
       OR (state = 'retryable' AND 'retryable' = ANY($1::text[]))
       OR (state = 'pending' AND 'pending' = ANY($1::text[]))
       OR (state = 'completed' AND 'completed' = ANY($1::text[]))
       OR (state = 'cancelled' AND 'cancelled' = ANY($1::text[]))
       OR (state = 'discarded' AND 'discarded' = ANY($1::text[])))
  AND ($2::text IS NULL OR kind = $2)
  AND ($3::text IS NULL OR queue = $3)
  AND ($4::text IS NULL OR strpos(args::text, $4) > 0)
  AND ($5::bigint IS NULL OR id < $5)
  AND ($6::bigint IS NULL OR id <= $6)
