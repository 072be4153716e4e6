-- Deletes the rows job_delete_finalized_pick.sql locked ($3), judged again by what has
-- committed since its snapshot: this statement's own snapshot, taken after the locks, sees a
-- child that committed while the pick waited or ran, and so keeps its parent; and a job
-- retried by an admin in between (committed before the pick locked it) is `available` now,
-- and stays.
-- Differs from SQLite, whose statement runs inside its one writer's transaction: no other
-- connection can write between the pick and the delete there.
-- A parent stays while it has a child that did not complete: one not finished (it reads the
-- parent's output when it runs), or cancelled or discarded (retried by hand, it reads it
-- then; until 5 Dec such a child outlived its completed parent and, retried, ran without it).
-- A batch's member stays as long as the batch's callback is kept: a callback retried after
-- its end counts the members again (migration 0038), and counted none that were deleted. Two
-- primary-key probes per job of a batch (its batch row, then the callback's row). Not a set of
-- every batch with a kept callback read once per statement: past about 270,000 batches that
-- set no longer fit PostgreSQL's hash memory, and its plain subplan then walked the set for
-- each job (a pick ran for minutes); nor a look through the member's edges for the callback,
-- a nested loop per member (200 ms a pick past 100,000 kept members).
DELETE FROM porter_jobs
WHERE id = ANY($3::bigint[])
  AND state = $1 AND finalized_at < porter_now() - $2::float8 * interval '1 second'
  AND NOT (has_dependents AND EXISTS (
      SELECT 1 FROM porter_job_deps d JOIN porter_jobs c ON c.id = d.child_id
      WHERE d.parent_id = porter_jobs.id AND c.state <> 'completed'))
  AND NOT (batch_id IS NOT NULL AND EXISTS (
      SELECT 1 FROM porter_batches b JOIN porter_jobs c ON c.id = b.callback_id
      WHERE b.id = porter_jobs.batch_id AND b.callback_id <> porter_jobs.id))
