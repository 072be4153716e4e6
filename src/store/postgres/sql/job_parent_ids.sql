-- The parents of job $1 (its edges as a child), by the primary key of the edges.
SELECT parent_id FROM porter_job_deps WHERE child_id = $1 ORDER BY parent_id
