-- Of the jobs listed to be cancelled (?1, a JSON array of ids), those the cancel of another listed
-- job would reach: waiting descendants of a listed job, through any edge (the cancel of a
-- parent cancels a waiting child, or counts its end for an after_any one), newest first: a
-- bulk cancel or a workflow's cancel cancels these first, then the rest oldest first (see
-- cancel_order in mod.rs).
WITH RECURSIVE listed(id) AS (SELECT value FROM json_each(?1)),
below(id) AS (
    SELECT d.child_id FROM listed l
    JOIN porter_job_deps d ON d.parent_id = l.id
    JOIN porter_jobs c ON c.id = d.child_id AND c.state = 'pending'
    UNION
    SELECT d.child_id FROM below b
    JOIN porter_job_deps d ON d.parent_id = b.id
    JOIN porter_jobs c ON c.id = d.child_id AND c.state = 'pending'
)
SELECT DISTINCT id FROM listed WHERE id IN (SELECT id FROM below) ORDER BY id DESC
