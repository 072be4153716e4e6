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
      -- A job whose attempt count another program set to what porter cannot count on (not a
      -- whole number, a billion or more as on PostgreSQL, or below 32 bits' range) is never
      -- claimed: the claim's `attempt + 1` would not read back as a count, nor could its
      -- fences match it.
      AND typeof(attempt) = 'integer' AND attempt BETWEEN -2147483648 AND 999999999
    ORDER BY priority, scheduled_at, id
    -- A paused queue takes nothing, and one with limits is claimed by job_claim_limited.sql
    -- instead (this one then takes nothing, and the driver looks at the limits). Differs from
    -- PostgreSQL, whose planner checks such a condition once before the scan: as a WHERE term
    -- here SQLite tested it on every row and so walked the queue's whole backlog each time;
    -- as the LIMIT it is evaluated once, and a LIMIT of 0 reads no row.
    -- A worker whose recorded heartbeat is older than half its lease takes nothing either: a
    -- claim it sent before it stalled (stopped, or its database locked) and that runs only
    -- now would take jobs for a worker other rescuers are about to judge lost. A worker not
    -- registered, or registered without a lease, is not held back.
    LIMIT CASE WHEN EXISTS (SELECT 1 FROM porter_queues WHERE name = ?1
                            AND (paused_at IS NOT NULL OR concurrency IS NOT NULL OR per_key_concurrency IS NOT NULL
                                 OR rate_limit IS NOT NULL OR rate_per_key_limit IS NOT NULL))
                 OR EXISTS (SELECT 1 FROM porter_workers WHERE id = ?2 AND lease_ms IS NOT NULL
                            AND heartbeat_at < strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(),
                                                        printf('%+.3f seconds', max(min(-lease_ms / 2000.0, 20000000000.0), -20000000000.0))))
               THEN 0 ELSE ?4 END
)
RETURNING *
