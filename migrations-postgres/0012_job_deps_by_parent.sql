-- Dependencies cost what the parent has, not what waits elsewhere (issue 16's 2x target).
-- Same meaning as migrations-sqlite/0012_job_deps_by_parent.sql: every edge by its parent.
-- 0007's index held only unresolved edges, which neither the ON DELETE CASCADE of a deleted
-- parent (retention, workflow deletes) nor retention's "have its children ended" can use:
-- each deleted job scanned the whole edge table. (PostgreSQL's trigger already finds a
-- parent's children by id: it needs no change.)
DROP INDEX porter_job_deps_parent;
CREATE INDEX porter_job_deps_parent ON porter_job_deps (parent_id);
