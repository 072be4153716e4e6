-- A claim of a queue with limits, in the transaction that locked the queue's row
-- (job_claim_limits.sql). Differs from SQLite: there the one write transaction serializes
-- claims; here the row lock does, and since every statement of a READ COMMITTED transaction
-- reads what committed before it began, this one counts the running jobs and starts of every
-- claim that held the lock before. FOR UPDATE SKIP LOCKED still skips jobs a user's cancel or
-- retry holds at this moment.
-- $1 queue, $2 worker, $3 kinds, $4 most jobs; the limits, NULL for none: $5 concurrency, $6
-- per key, $7 rate limit and $8 its window in ms, $9 per-key rate limit and $10 its window.
-- $11 of $4 are for free slots (the rest would wait in the producer's local queue), $12 jobs
-- the producer holds waiting already, $13 its jobs running in a slot: with a concurrency
-- limit, jobs beyond the free slots are taken only while the producer's waiting jobs stay
-- within half of the room the limit leaves it (the limit less the other running jobs and less
-- its free slots' jobs), so no worker fills a limit with jobs that wait while other workers
-- have free slots. The worker's own running rows neither waiting nor in a slot ($2's rows less
-- $12 and $13) have finished, their outcome still being written: they count against the limit
-- but not against that room. Counted here, in the claim's statement, so an outcome written
-- before it is never counted. (GREATEST and LEAST skip NULLs here, unlike SQLite's max and
-- min: hence the CASE for a queue without $5.)
-- Jobs of keys at their limit are left out of the pool before it is cut to size, so a backlog
-- of one key holds no other key back; within the pool, each key takes at most what it has left.
-- Without per-key limits every pool row is picked in the pool's order, so the pool is cut to
-- the budget itself (it is locked FOR UPDATE: locking 4 times what is claimed made a claim
-- held to half the room cost as much as a full one), and to nothing when the budget is 0.
-- The starts of a rate-limited queue ($7 or $9 set) are recorded at their claim time, the
-- clock at the row's update (see `claimed`), never before this statement's time.
-- Differs from SQLite (whose porter_now() reads the clock at each call, inside the one
-- writer): here the window's "now" is this statement's time, not the transaction's
-- (porter_now() is now(), the time the transaction began, before it waited for the queue's
-- lock). Claims then see times that only move forward in lock order, so a start pruned by one
-- claim (queue_starts_prune.sql, same clock) is outside the window of every claim after it.
WITH running AS (
    SELECT concurrency_key AS k, count(*) AS n, count(*) FILTER (WHERE attempted_by = $2) AS own
    FROM porter_jobs
    WHERE state = 'running' AND queue = $1
    GROUP BY concurrency_key
),
key_starts AS (
    SELECT concurrency_key AS k, count(*) AS n FROM porter_queue_starts
    WHERE $9::int IS NOT NULL AND queue = $1 AND concurrency_key IS NOT NULL
      AND started_at > coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, statement_timestamp()) - $10::bigint * interval '1 millisecond'
    GROUP BY concurrency_key
),
blocked AS (
    SELECT k FROM running WHERE k IS NOT NULL AND $6::int IS NOT NULL AND n >= $6::int
    UNION
    SELECT k FROM key_starts WHERE n >= $9::int
),
total AS (
    SELECT COALESCE(sum(n), 0)::bigint AS n,
           GREATEST(0, COALESCE(sum(own), 0)::bigint - $13::bigint - $12::bigint) AS finished
    FROM running
),
-- Nothing for a worker whose recorded heartbeat is older than half its lease (see
-- job_claim.sql).
budget AS (
    SELECT CASE WHEN EXISTS (SELECT 1 FROM porter_workers w WHERE w.id = $2 AND w.lease_ms IS NOT NULL
                             AND w.heartbeat_at < coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, statement_timestamp())
                                           - least(greatest(w.lease_ms, -40000000000000), 40000000000000) / 2.0 * interval '1 millisecond')
                THEN 0 ELSE GREATEST(0, LEAST($4::bigint,
        CASE WHEN $5::int IS NULL THEN $4::bigint
             ELSE LEAST($5::int - (SELECT n FROM total),
                        $11::bigint + GREATEST(0, ($5::int - ((SELECT n - finished FROM total) - $12::bigint) - $11::bigint) / 2 - $12::bigint))
        END,
        COALESCE($7::int - (SELECT count(*) FROM porter_queue_starts WHERE $7::int IS NOT NULL AND queue = $1
                            AND started_at > coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, statement_timestamp()) - $8::bigint * interval '1 millisecond'), $4::bigint))) END::bigint AS n
),
pool AS (
    SELECT id, concurrency_key, priority, scheduled_at FROM porter_jobs
    WHERE state = 'available' AND queue = $1 AND scheduled_at <= coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, statement_timestamp())
      AND kind = ANY($3::text[])
      -- A job a plain INSERT gave a billion attempts (or allowed attempts) or more is never
      -- claimed: near the top of `integer`, the claim's `attempt + 1` would fail the claim of
      -- the whole queue, and a release's `max_attempts + 1` the give-back (0037).
      AND attempt < 1000000000 AND max_attempts < 1000000000
      AND (concurrency_key IS NULL OR concurrency_key NOT IN (SELECT k FROM blocked))
      AND (SELECT n FROM budget) > 0
    ORDER BY priority, scheduled_at, id
    LIMIT CASE WHEN $6::int IS NULL AND $9::int IS NULL THEN (SELECT n FROM budget) ELSE $4::bigint * 4 END
    FOR UPDATE SKIP LOCKED
),
-- Each pool row looks up its key's running jobs and starts in a jsonb object built once (a
-- binary search): joined to the CTEs instead, a claim soon after a bulk insert
-- (table statistics not yet analyzed: every CTE estimated at 1 row) scanned every running
-- key for every pool row, 10 ms of a 17 ms claim with 100 keys running.
key_counts AS (
    SELECT COALESCE((SELECT jsonb_object_agg(k, n) FROM running WHERE k IS NOT NULL), '{}') AS running,
           COALESCE((SELECT jsonb_object_agg(k, n) FROM key_starts), '{}') AS started
),
ranked AS (
    SELECT id, concurrency_key, priority, scheduled_at,
           row_number() OVER (PARTITION BY concurrency_key ORDER BY priority, scheduled_at, id) AS rn
    FROM pool
),
picked AS (
    SELECT r.id FROM ranked r
    WHERE r.concurrency_key IS NULL
       OR (($6::int IS NULL OR r.rn <= $6::int - COALESCE(((SELECT running FROM key_counts) ->> r.concurrency_key)::bigint, 0))
           AND ($9::int IS NULL OR r.rn <= $9::int - COALESCE(((SELECT started FROM key_counts) ->> r.concurrency_key)::bigint, 0)))
    ORDER BY r.priority, r.scheduled_at, r.id
    LIMIT (SELECT n FROM budget)
),
-- attempted_at: the clock at the row's update, as in job_claim.sql (after the snapshot, so
-- after every commit the claim saw).
claimed AS (
    UPDATE porter_jobs j
    SET state = 'running', attempt = j.attempt + 1, attempted_at = coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, clock_timestamp()), attempted_by = $2
    WHERE j.id = ANY(ARRAY(SELECT id FROM picked))
    RETURNING j.*
),
recorded AS (
    INSERT INTO porter_queue_starts (queue, concurrency_key, started_at)
    SELECT queue, concurrency_key, attempted_at FROM claimed
    WHERE $7::int IS NOT NULL OR $9::int IS NOT NULL
)
SELECT * FROM claimed
