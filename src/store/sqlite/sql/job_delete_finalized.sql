-- One bounded batch of one final state; ?2 is a modifier like '-86400.000 seconds'.
-- Unlike PostgreSQL's (see its job_delete_finalized.sql), the pick and the delete need no
-- re-check: the statement runs inside the one writer's BEGIN IMMEDIATE transaction, so no
-- other connection (of this or any process) can retry a job between them.
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
DELETE FROM porter_jobs WHERE id IN (
    SELECT id FROM porter_jobs
    WHERE state = ?1 AND finalized_at < strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(), ?2)
      AND NOT (has_dependents AND EXISTS (
          SELECT 1 FROM porter_job_deps d JOIN porter_jobs c ON c.id = d.child_id
          WHERE d.parent_id = porter_jobs.id AND c.state <> 'completed'))
      AND NOT (batch_id IS NOT NULL AND EXISTS (
          SELECT 1 FROM porter_batches b JOIN porter_jobs c ON c.id = b.callback_id
          WHERE b.id = porter_jobs.batch_id AND b.callback_id <> porter_jobs.id))
    LIMIT ?3
)
