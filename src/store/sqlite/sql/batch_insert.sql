-- A batch's row (its jobs are inserted after it, in the same transaction).
INSERT INTO porter_batches (on_success, members, created_at) VALUES (?1, ?2, porter_now())
RETURNING id
