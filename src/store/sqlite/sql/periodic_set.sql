-- Runs inside the one write transaction, after periodic_get.sql: the slot only moves forward.
INSERT INTO porter_periodic (name, last_slot) VALUES (?1, ?2)
ON CONFLICT (name) DO UPDATE SET last_slot = excluded.last_slot WHERE porter_periodic.last_slot < excluded.last_slot
