-- A workflow's jobs in insertion order.
SELECT id, workflow_step, kind, state, attempt, attempted_at, finalized_at
FROM porter_jobs WHERE workflow_id = ?1 ORDER BY id
