-- The edges of job ?1, sent back to wait by job_release_wait.sql: an edge is unresolved while
-- its parent has not ended, so that the parent's end counts, and resolved once it has (the
-- job's count left it out). An edge whose parent row is gone (deleted by another program with
-- foreign keys off) keeps its flag, as PostgreSQL's join leaves it, and is not counted.
UPDATE porter_job_deps
SET resolved = coalesce((SELECT p.state IN ('completed', 'cancelled', 'discarded')
                         FROM porter_jobs p WHERE p.id = porter_job_deps.parent_id), resolved)
WHERE child_id = ?1
