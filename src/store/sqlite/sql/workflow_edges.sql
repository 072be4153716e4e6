-- The edges (child, parent) of the children with ids ?2 to ?3 (a page of workflow ?1's jobs:
-- a range of the edges' key, where the edges of other jobs inserted meanwhile may sit too, and
-- the caller keeps its page's), with the parent's step name when the parent is a step of the
-- same workflow (by its primary key, not by a walk of the workflow's steps).
SELECT d.child_id, d.parent_id, p.workflow_step
FROM porter_job_deps d
LEFT JOIN porter_jobs p ON p.id = d.parent_id AND p.workflow_id = ?1
WHERE d.child_id BETWEEN ?2 AND ?3
ORDER BY d.child_id, d.parent_id
