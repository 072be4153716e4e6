-- Metadata is read as CAST(metadata AS TEXT): a BLOB holding JSON text (another program's,
-- through an SQLite before 3.45) is otherwise read as binary JSON (review of 7 Dec).
-- The unfinished jobs of workflow ?1, newest first. They are cancelled one at a time
-- (job_cancel.sql) in the order cancel_order in mod.rs gives, after it has put the waiting
-- ones out of their parents' reach, so that their parents' ends find them out of 'pending' and
-- promote or cancel nothing (SQLite runs a row's AFTER triggers before the statement moves to
-- the next row, so one UPDATE over the whole workflow would have its after_any steps promoted
-- by their cancelled parents in the middle of it).
SELECT id FROM porter_jobs
WHERE id IN (SELECT job_id FROM porter_workflow_steps WHERE workflow_id = ?1)
  AND state IN ('available','scheduled','running','retryable','pending')
  -- A running job asked to stop already is left out: nothing is asked again, and the answer
  -- counts it no more (a second cancel counted it as asked again).
  AND NOT (state = 'running' AND json_extract(CAST(metadata AS TEXT), '$.cancel_requested_at') IS NOT NULL)
ORDER BY id DESC
