-- A claim of a queue with limits (job_claim_limits.sql read them). Differs from PostgreSQL,
-- which locks the queue's row first so that claims of several processes take turns: here no
-- lock and no FOR UPDATE SKIP LOCKED are needed, since this runs inside the one write
-- transaction (BEGIN IMMEDIATE), which no other connection or process can interleave with, so
-- the counts below cannot change between this statement's reads and its update.
-- ?1 queue, ?2 worker, ?3 kinds (JSON array), ?4 most jobs; the limits, NULL for none: ?5
-- concurrency, ?6 per key, ?7 rate limit and ?8 its window as a date modifier
-- ('-1.000 seconds'), ?9 per-key rate limit and ?10 its window. ?11 of ?4 are for free slots
-- (the rest would wait in the producer's local queue), ?12 jobs the producer holds waiting
-- already, ?13 its jobs running in a slot: with a concurrency limit, jobs beyond the free
-- slots are taken only while the producer's waiting jobs stay within half of the room the
-- limit leaves it (the limit less the other running jobs and less its free slots' jobs), so
-- no worker fills a limit with jobs that wait while other workers have free slots. The
-- worker's own running rows neither waiting nor in a slot (?2's rows less ?12 and ?13) have
-- finished, their outcome still being written: they count against the limit but not against
-- that room. Counted here, in the claim's statement, so an outcome written before it is never
-- counted. ?14 are the jobs earlier passes of this claim took (below): running under ?2 but
-- not in ?12 or ?13, they are taken out of the finished ones and out of the budget.
-- Jobs of keys at their limit are left out of the pool before it is cut to size, so a backlog
-- of one key holds no other key back; within the pool, each key takes at most what it has left.
-- The pool is cut to the budget, and to nothing when the budget is 0. Differs from PostgreSQL,
-- which locks a pool of 4 x the jobs asked for once: with per-key limits a pool of the budget
-- may hold several jobs of one key and so take less than the budget, and the driver then runs
-- this statement again in the same transaction (claim_limited in mod.rs), ?14 being the jobs
-- this claim took already; their keys are now running, so the next pool leaves them out, and
-- the claim ends when a pass takes nothing more: it takes all that the limits allow, at the
-- cost of the jobs it looks at, where a pool of a fixed 4 x both read more rows and could
-- still stop short.
UPDATE porter_jobs
SET state = 'running', attempt = attempt + 1, attempted_at = (SELECT porter_now()), attempted_by = ?2
WHERE id IN (
    WITH running AS (
        SELECT concurrency_key AS k, count(*) AS n, count(*) FILTER (WHERE attempted_by = ?2) AS own
        FROM porter_jobs
        WHERE state = 'running' AND queue = ?1
        GROUP BY concurrency_key
    ),
    key_starts AS (
        SELECT concurrency_key AS k, count(*) AS n FROM porter_queue_starts
        WHERE ?9 IS NOT NULL AND queue = ?1 AND concurrency_key IS NOT NULL
          AND started_at > strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(), ?10)
        GROUP BY concurrency_key
    ),
    blocked AS (
        SELECT k FROM running WHERE k IS NOT NULL AND ?6 IS NOT NULL AND n >= ?6
        UNION
        SELECT k FROM key_starts WHERE n >= ?9
    ),
    total AS (
        SELECT coalesce(sum(n), 0) AS n, max(0, coalesce(sum(own), 0) - ?14 - ?13 - ?12) AS finished
        FROM running
    ),
    -- Nothing for a worker whose recorded heartbeat is older than half its lease (see
    -- job_claim.sql).
    budget AS (
        SELECT CASE WHEN EXISTS (SELECT 1 FROM porter_workers WHERE id = ?2 AND lease_ms IS NOT NULL
                                 AND heartbeat_at < strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(),
                                                             printf('%+.3f seconds', max(min(-lease_ms / 2000.0, 20000000000.0), -20000000000.0))))
                    THEN 0 ELSE max(0, min(?4 - ?14,
            coalesce(?5 - (SELECT n FROM total), ?4),
            coalesce(?11 + max(0, (?5 - ((SELECT n - ?14 - finished FROM total) - ?12) - ?11) / 2 - ?12) - ?14, ?4),
            coalesce(?7 - (SELECT count(*) FROM porter_queue_starts WHERE ?7 IS NOT NULL AND queue = ?1
                           AND started_at > strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(), ?8)), ?4))) END AS n
    ),
    pool AS (
        SELECT id, concurrency_key, priority, scheduled_at FROM porter_jobs
        WHERE state = 'available' AND queue = ?1 AND scheduled_at <= porter_now()
          AND kind IN (SELECT value FROM json_each(?3))
          -- An attempt count porter cannot count on is never claimed (see job_claim.sql).
          AND typeof(attempt) = 'integer' AND attempt BETWEEN -2147483648 AND 999999999
          AND (concurrency_key IS NULL OR concurrency_key NOT IN (SELECT k FROM blocked))
          AND (SELECT n FROM budget) > 0
        ORDER BY priority, scheduled_at, id
        LIMIT (SELECT n FROM budget)
    ),
    ranked AS (
        SELECT id, concurrency_key, priority, scheduled_at,
               row_number() OVER (PARTITION BY concurrency_key ORDER BY priority, scheduled_at, id) AS rn
        FROM pool
    )
    SELECT r.id FROM ranked r
    WHERE r.concurrency_key IS NULL
       OR ((?6 IS NULL OR r.rn <= ?6 - coalesce((SELECT n FROM running WHERE k = r.concurrency_key), 0))
           AND (?9 IS NULL OR r.rn <= ?9 - coalesce((SELECT n FROM key_starts WHERE k = r.concurrency_key), 0)))
    -- No ORDER BY or LIMIT here: the pool holds no more than the budget, and the update
    -- takes the set of ids whatever their order.
)
RETURNING *
