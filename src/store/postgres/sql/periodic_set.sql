-- Differs from SQLite, which reads the slot (periodic_get.sql) and writes it inside its one
-- write transaction, where nobody can come between. Here it is one upsert: its row lock makes
-- concurrent callers for the same slot wait, then see the slot taken and change nothing, so
-- exactly one of them gets a row back. `created` (xmax = 0) tells a new row from an advanced
-- one; `was_ahead`, a mark replaced because a clock ran ahead (from the statement's snapshot:
-- a mark written ahead by another transaction since, which on PostgreSQL's one clock means the
-- server's clock jumped in between, is replaced as a mark moved forward).
WITH before AS (SELECT last_slot FROM porter_periodic WHERE name = $1)
INSERT INTO porter_periodic (name, last_slot) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET last_slot = EXCLUDED.last_slot
WHERE porter_periodic.last_slot < EXCLUDED.last_slot
   -- A mark left by a clock that ran ahead: past now by more than PERIODIC_CLOCK_SLACK_MS
   -- ($3). Compared with now, not with this slot, which may be an interval behind it.
   OR porter_periodic.last_slot > (extract(epoch FROM porter_now()) * 1000)::bigint + $3
RETURNING (xmax = 0) AS created,
          coalesce((SELECT last_slot FROM before) > (extract(epoch FROM porter_now()) * 1000)::bigint + $3, false) AS was_ahead
