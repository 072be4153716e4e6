-- Writes nothing, but begins a write: run first in a caller's transaction, it takes the write
-- lock before anything reads (see job_insert_tx in mod.rs). SQLite waits out another writer
-- (the connection's busy timeout) only for a transaction that has not read yet.
UPDATE porter_queues SET name = name WHERE 0
