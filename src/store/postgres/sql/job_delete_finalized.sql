-- One bounded batch of one final state; $2 is the retention in seconds.
-- The outer WHERE repeats the state and age: under READ COMMITTED the subquery picks ids from
-- its snapshot, and a row changed meanwhile (a job retried by an admin and committed between
-- the pick and the delete) is re-checked against the outer conditions only, so without them
-- the retried job would be deleted (the delete waits for the retry's row lock, then re-reads
-- the row: `available` now, so it stays).
-- Differs from SQLite, whose statement runs inside its one writer's transaction: no other
-- connection can write between the pick and the delete there.
-- A parent whose children have not finished stays (they read its output when they run).
DELETE FROM porter_jobs WHERE id IN (
    SELECT id FROM porter_jobs
    WHERE state = $1 AND finalized_at < porter_now() - $2::float8 * interval '1 second'
      AND NOT (has_dependents AND EXISTS (
          SELECT 1 FROM porter_job_deps d JOIN porter_jobs c ON c.id = d.child_id
          WHERE d.parent_id = porter_jobs.id AND c.state NOT IN ('completed','cancelled','discarded')))
    LIMIT $3
)
AND state = $1 AND finalized_at < porter_now() - $2::float8 * interval '1 second'
AND NOT (has_dependents AND EXISTS (
    SELECT 1 FROM porter_job_deps d JOIN porter_jobs c ON c.id = d.child_id
    WHERE d.parent_id = porter_jobs.id AND c.state NOT IN ('completed','cancelled','discarded')))
