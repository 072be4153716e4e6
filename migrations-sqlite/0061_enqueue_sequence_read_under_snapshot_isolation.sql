-- Nothing on SQLite: PostgreSQL's porter_enqueue read whether a sequence was busy on a caller's
-- snapshot from before the sequence's lock (migrations-postgres/0061). SQLite has no such
-- function, and a transaction whose snapshot is stale cannot write (SQLITE_BUSY_SNAPSHOT): a
-- plain INSERT there fails rather than strands its sequence.
SELECT 1;
