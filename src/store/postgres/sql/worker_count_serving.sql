-- Live workers that serve queue $2 and kind $3, judged as job_unserved.sql judges them ($1
-- seconds, the default lease, for a registration without one of its own).
SELECT count(*) FROM porter_workers w
WHERE w.heartbeat_at >= porter_now() - COALESCE(CASE WHEN w.lease_ms > 40000000000000 THEN 40000000000000 WHEN w.lease_ms < -40000000000000 THEN -40000000000000 ELSE w.lease_ms END / 1000.0, $1::float8) * interval '1 second'
  AND (w.queues IS NULL OR w.queues ? $2)
  AND (w.kinds IS NULL OR w.kinds ? $3)
