-- A queue's record is only updated: resuming a queue with no record (never paused, or a name
-- nobody uses) changes nothing. It used to insert one, so a typo was listed for good.
UPDATE porter_queues SET paused_at = NULL WHERE name = ?1
