-- SQLite has no FOR UPDATE SKIP LOCKED: it needs none, since this runs inside the one write
-- transaction (BEGIN IMMEDIATE), which no other connection or process can interleave with.
-- ?3 is a JSON array of the kinds the claiming worker runs. The clock in a scalar subquery is
-- formatted once per statement, not once per claimed row.
UPDATE porter_jobs
SET state = 'running', attempt = attempt + 1, attempted_at = (SELECT porter_now()), attempted_by = ?2
WHERE id IN (
    SELECT id FROM porter_jobs
    WHERE state = 'available' AND queue = ?1 AND scheduled_at <= porter_now()
      AND kind IN (SELECT value FROM json_each(?3))
      -- A queue with limits is claimed by job_claim_limited.sql instead (this one then takes
      -- nothing, and the driver looks at the limits): one condition on a row read anyway.
      AND NOT EXISTS (SELECT 1 FROM porter_queues WHERE name = ?1
                      AND (paused_at IS NOT NULL OR concurrency IS NOT NULL OR per_key_concurrency IS NOT NULL
                           OR rate_limit IS NOT NULL OR rate_per_key_limit IS NOT NULL))
    ORDER BY priority, scheduled_at, id
    LIMIT ?4
)
RETURNING *
