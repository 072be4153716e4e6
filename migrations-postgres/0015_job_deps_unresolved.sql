-- Unresolved edges by parent, beside 0012's index of every edge by parent. 0014's statement
-- trigger resolves the edges of every ended parent an UPDATE touched, and an UPDATE touches
-- a parent long after it ended too: each child inserted under it locks and marks it
-- (job_parents_mark.sql). Through 0012's index that look read every edge the parent had
-- resolved before, so K children inserted one by one under a finished job read K^2/2 edges;
-- here it reads only the unresolved ones (none, for a parent that ended before).
-- SQLite needs none (migrations-sqlite/0015_job_deps_unresolved.sql): its row trigger fires only
-- when a parent's state changes to an end.
CREATE INDEX IF NOT EXISTS porter_job_deps_unresolved ON porter_job_deps (parent_id) WHERE NOT resolved;
