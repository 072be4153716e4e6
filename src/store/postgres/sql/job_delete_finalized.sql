-- One bounded batch of one final state; $2 is the retention in seconds.
DELETE FROM porter_jobs WHERE id IN (
    SELECT id FROM porter_jobs
    WHERE state = $1 AND finalized_at < now() - $2::float8 * interval '1 second'
    LIMIT $3
)
