-- The edges of job ?1, sent back to wait by job_release_wait.sql: an edge is unresolved while
-- its parent has not ended, so that the parent's end counts, and resolved once it has (the
-- job's count left it out).
UPDATE porter_job_deps
SET resolved = (SELECT p.state IN ('completed', 'cancelled', 'discarded')
                FROM porter_jobs p WHERE p.id = porter_job_deps.parent_id)
WHERE child_id = ?1
