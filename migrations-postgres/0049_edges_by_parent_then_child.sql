-- Edges by parent, then child: porter_job_deps_parent (0012) again with the child's id after
-- the parent's, so that a parent's children are read in id order from any child on
-- (`GET /admin/jobs/{id}/children`, job_links.sql) by one walk of the index. With the parent
-- alone, each page of a fan-out's children read and sorted every child of the parent (a
-- review on 5 Dec: 3 s a page of 10,000 of 100,000 children on SQLite; on PostgreSQL the
-- planner walked the jobs' primary key from its start instead). Every lookup by parent alone
-- (the dependency trigger, the cascade of a deleted job, retention) uses it as before.
DROP INDEX porter_job_deps_parent;
CREATE INDEX porter_job_deps_parent ON porter_job_deps (parent_id, child_id);
