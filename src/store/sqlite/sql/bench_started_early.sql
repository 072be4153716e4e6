-- porter bench: how many jobs of a drained queue started before a parent of theirs ended (or
-- never started, or waited for a parent that never ended), read from the rows' times after
-- the drain, as the workflow tests read them. Times are porter's one text format, which
-- orders as text. A job waiting for several parents counts once.
SELECT count(DISTINCT c.id)
FROM porter_job_deps d
JOIN porter_jobs c ON c.id = d.child_id
JOIN porter_jobs p ON p.id = d.parent_id
WHERE c.queue = ?1
  AND (p.finalized_at IS NULL OR c.attempted_at IS NULL OR c.attempted_at < p.finalized_at)
