-- Tags jobs just inserted ($2, ids) as members (or the callback) of batch $1, in one
-- statement (SQLite tags row by row: its statements cost no round trip).
UPDATE porter_jobs SET batch_id = $1 WHERE id = ANY($2::bigint[])
