-- $4 is an array of states (empty for all).
-- The states are tested one by one, `state = 'x' AND 'x' = ANY(...)`, not as `state = ANY(...)`:
-- since migration 0041 no index has `state` in its key, only a partial index per group of
-- states, and PostgreSQL proves a partial index's predicate from an OR of equalities (a custom
-- plan folds the arms not asked for away, and a bitmap OR reads the index of each state
-- asked for) but never from `= ANY(array)`, which scanned the table. The state CHECK allows
-- these eight states only.
SELECT * FROM porter_jobs
WHERE ($1::text IS NULL OR kind = $1)
  AND ($2::text IS NULL OR queue = $2)
  AND ($3::bigint IS NULL OR id < $3)
  AND (cardinality($4::text[]) = 0
       OR (state = 'available' AND 'available' = ANY($4::text[]))
       OR (state = 'scheduled' AND 'scheduled' = ANY($4::text[]))
       OR (state = 'running' AND 'running' = ANY($4::text[]))
       OR (state = 'retryable' AND 'retryable' = ANY($4::text[]))
       OR (state = 'pending' AND 'pending' = ANY($4::text[]))
       OR (state = 'completed' AND 'completed' = ANY($4::text[]))
       OR (state = 'cancelled' AND 'cancelled' = ANY($4::text[]))
       OR (state = 'discarded' AND 'discarded' = ANY($4::text[])))
ORDER BY id DESC
LIMIT $5
