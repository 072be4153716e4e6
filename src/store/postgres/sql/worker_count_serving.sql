-- Live workers that serve queue $2 and kind $3, judged as job_unserved.sql judges them and
-- what they serve ($1 seconds, the default lease, for a registration without one of its own).
SELECT count(*) FROM porter_workers w
WHERE w.heartbeat_at >= porter_now() - COALESCE(CASE WHEN w.lease_ms > 40000000000000 THEN 40000000000000 WHEN w.lease_ms < -40000000000000 THEN -40000000000000 ELSE w.lease_ms END / 1000.0, $1::float8) * interval '1 second'
  AND (CASE WHEN w.queues IS NULL OR jsonb_typeof(w.queues) <> 'array' THEN true
            ELSE w.queues ? $2 OR jsonb_path_exists(w.queues, 'strict $[*] ? (@.type() != "string")') END)
  AND (CASE WHEN w.kinds IS NULL OR jsonb_typeof(w.kinds) <> 'array' THEN true
            ELSE w.kinds ? $3 OR jsonb_path_exists(w.kinds, 'strict $[*] ? (@.type() != "string")') END)
