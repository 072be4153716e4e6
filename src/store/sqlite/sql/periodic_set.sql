-- Runs inside the one write transaction, after periodic_get.sql: the slot moves forward, or
-- back from a mark left by a clock that ran ahead (one past ?3: now, read by periodic_get.sql,
-- plus PERIODIC_CLOCK_SLACK_MS).
INSERT INTO porter_periodic (name, last_slot) VALUES (?1, ?2)
ON CONFLICT (name) DO UPDATE SET last_slot = excluded.last_slot
WHERE porter_periodic.last_slot < excluded.last_slot
   OR porter_periodic.last_slot > ?3
