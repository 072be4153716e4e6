-- Starts of queue ?1 dated after now were recorded under a clock since set back, or by a
-- process whose clock runs ahead of this one's: they count as started now, so they hold the
-- queue for one window at most, not until the clock reaches them again (review of 7 Dec: a
-- queue limited to 5 a second stood still for the hour its clock had been fast). Run with
-- queue_starts_prune.sql, before the claim (claim_limited in mod.rs).
UPDATE porter_queue_starts
SET started_at = strftime('%Y-%m-%dT%H:%M:%fZ', porter_now())
WHERE queue = ?1 AND started_at > strftime('%Y-%m-%dT%H:%M:%fZ', porter_now())
