-- Live workers that serve queue ?2 and kind ?3, judged as job_unserved.sql judges them and
-- what they serve (?1 the default lease, '-15.000 seconds', for a registration without one of its own).
SELECT count(*) FROM porter_workers w
WHERE w.heartbeat_at >= strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(),
                                 CASE WHEN w.lease_ms IS NULL THEN ?1
                                      ELSE printf('%+.3f seconds', max(min(-w.lease_ms / 1000.0, 40000000000.0), -40000000000.0)) END)
  AND (w.queues IS NULL OR json_type(w.queues) <> 'array'
       OR EXISTS (SELECT 1 FROM json_each(w.queues) WHERE type <> 'text' OR value = ?2))
  AND (w.kinds IS NULL OR json_type(w.kinds) <> 'array'
       OR EXISTS (SELECT 1 FROM json_each(w.kinds) WHERE type <> 'text' OR value = ?3))
