-- The unfinished jobs of workflow ?1, children before parents (highest id first: a child is
-- always inserted after its parents). Cancelled one at a time in this order (job_cancel.sql),
-- a job's children are already final when its cancel fires the triggers on a parent's end
-- (porter_jobs_finalized, porter_jobs_parent_failed), so they promote or cancel nothing: SQLite runs a row's AFTER triggers before the
-- statement moves to the next row, so one UPDATE over the whole workflow would have its
-- after_any steps promoted by their cancelled parents in the middle of it.
SELECT id FROM porter_jobs
WHERE id IN (SELECT job_id FROM porter_workflow_steps WHERE workflow_id = ?1)
  AND state IN ('available','scheduled','running','retryable','pending')
ORDER BY id DESC
