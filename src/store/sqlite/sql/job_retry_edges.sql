-- After a retry of job ?1 (job_retry.sql): its edges to parents that have not ended wait for
-- their ends again. An edge is resolved once its parent's end was counted, or when that parent
-- was retried (porter_jobs_reopened): unresolved, the parent's next end counts it.
UPDATE porter_job_deps SET resolved = 0
WHERE child_id = ?1 AND resolved
  AND parent_id IN (SELECT p.id FROM porter_jobs p
                    WHERE p.id IN (SELECT parent_id FROM porter_job_deps WHERE child_id = ?1)
                      AND p.state NOT IN ('completed','cancelled','discarded'))
