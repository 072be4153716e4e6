-- After job_release.sql gave job ?1 back unstarted, when job_parents_ran_again.sql (asked just
-- before, while the job still ran under its fence) found that a parent ran again since its
-- claim: a retry of that parent found the job running and left it, and the give-back would
-- make it claimable beside that parent's new run, or after that run failed, or (a batch's
-- callback) with the counts of the member's first end. It is judged again by its parents as
-- they stand: back to `pending`, counting the parents that have not ended;
-- job_release_edges.sql and job_release_decide.sql follow. Same on PostgreSQL.
UPDATE porter_jobs SET
    state = 'pending',
    waiting_for = (SELECT count(*) FROM porter_job_deps d JOIN porter_jobs p ON p.id = d.parent_id
                   WHERE d.child_id = ?1 AND p.state NOT IN ('completed', 'cancelled', 'discarded'))
WHERE id = ?1 AND +state = 'available'
