-- One page of a job's children ($2 true) or parents ($2 false): by id after $3, at most $4,
-- each with its state now. Two branches, each walking its own index of edges from the cursor
-- on (children by porter_job_deps_parent, by parent then child since 0049; parents by the
-- primary key, by child then parent) and looking each edge's job up by its id, until the
-- page is full; the branch whose one-time filter on $2 fails is skipped at run time. The
-- lookup is a subquery the planner keeps as one (OFFSET 0): joined plainly, it chose to
-- merge-join a walk of porter_jobs_pkey from the table's first job, or to hash every job
-- after the cursor, for each page (review of 5 Dec: 110,051 jobs read for 51 children).
(SELECT j.id, j.state, j.kind, d.after_any
 FROM porter_job_deps d
 CROSS JOIN LATERAL (SELECT id, state, kind FROM porter_jobs WHERE id = d.child_id OFFSET 0) j
 WHERE $2::boolean AND d.parent_id = $1 AND d.child_id > $3
 ORDER BY d.child_id
 LIMIT $4)
UNION ALL
(SELECT j.id, j.state, j.kind, d.after_any
 FROM porter_job_deps d
 CROSS JOIN LATERAL (SELECT id, state, kind FROM porter_jobs WHERE id = d.parent_id OFFSET 0) j
 WHERE NOT $2::boolean AND d.child_id = $1 AND d.parent_id > $3
 ORDER BY d.parent_id
 LIMIT $4)
ORDER BY 1
