-- After a retry of job ?1 (job_retry.sql): its edges to parents that have not ended wait for
-- their ends again. An edge is resolved once its parent's end was counted, or when that parent
-- was retried (porter_jobs_reopened): unresolved, the parent's next end counts it.
UPDATE porter_job_deps SET resolved = 0
WHERE child_id = ?1 AND resolved
  AND (SELECT state FROM porter_jobs WHERE id = parent_id) NOT IN ('completed','cancelled','discarded')
