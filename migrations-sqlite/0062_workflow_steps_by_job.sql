-- A workflow's steps by job id: a page of steps is read in insertion order (job id) from a
-- cursor, and with only the primary key (workflow_id, step) every read took all the
-- workflow's steps and sorted them. GET /admin/workflows/{id} reads a page 100 steps at a
-- time: a page of 100,000 steps made 1,000 such reads, 28 s on PostgreSQL, and two at once
-- both ran past the request timeout (review of 7 Dec). Written once per step, at its insert.
CREATE INDEX IF NOT EXISTS porter_workflow_steps_job ON porter_workflow_steps (workflow_id, job_id);
