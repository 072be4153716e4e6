-- Fenced: only the running attempt of the worker that claimed it can complete it.
-- Differs from SQLite (one row per statement inside its one write transaction): a whole batch
-- of fences in one statement, one round trip. Returns the fences that matched.
WITH fences AS (
    SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[]) AS f(id, attempt, worker_id)
)
UPDATE porter_jobs j SET state = 'completed', finalized_at = now()
FROM fences f
WHERE j.id = f.id AND j.state = 'running' AND j.attempt = f.attempt AND j.attempted_by = f.worker_id
RETURNING j.id, j.attempt, j.attempted_by
