-- One page of a job's children (?2 true) or parents (?2 false): by id after ?3, at most ?4,
-- each with its state now (as on PostgreSQL): children by porter_job_deps_parent, by parent
-- then child since 0049, parents by the primary key, each walked from the cursor on.
SELECT * FROM (
    SELECT j.id, j.state, j.kind, d.after_any
    FROM porter_job_deps d JOIN porter_jobs j ON j.id = d.child_id
    WHERE ?2 AND d.parent_id = ?1 AND d.child_id > ?3
    ORDER BY d.child_id
    LIMIT ?4
)
UNION ALL
SELECT * FROM (
    SELECT j.id, j.state, j.kind, d.after_any
    FROM porter_job_deps d JOIN porter_jobs j ON j.id = d.parent_id
    WHERE NOT ?2 AND d.child_id = ?1 AND d.parent_id > ?3
    ORDER BY d.parent_id
    LIMIT ?4
)
ORDER BY 1
