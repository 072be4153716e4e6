-- Metadata is read as CAST(metadata AS TEXT): a BLOB holding JSON text (another program's,
-- through an SQLite before 3.45) is otherwise read as binary JSON (review of 7 Dec).
-- Of the jobs ?2 (a JSON array of ids: those the worker holds), the running ones of worker ?1
-- whose cancel a user requested (see job_cancel.sql), by primary key.
SELECT id, attempt, attempted_by FROM porter_jobs
WHERE id IN (SELECT value FROM json_each(?2)) AND state = 'running' AND attempted_by = ?1
  AND json_extract(CAST(metadata AS TEXT), '$.cancel_requested_at') IS NOT NULL
ORDER BY id
