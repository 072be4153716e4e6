-- The slot recorded for a name, and now in Unix ms (porter_now(), read in the same write
-- transaction: a recorded slot past now by more than PERIODIC_CLOCK_SLACK_MS was recorded by
-- a clock that ran ahead).
SELECT last_slot, CAST(round((julianday(porter_now()) - 2440587.5) * 86400000.0) AS INTEGER)
FROM porter_periodic WHERE name = ?1
