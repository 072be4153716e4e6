-- After job_release.sql gave job $1 back unstarted, when job_parents_ran_again.sql (asked just
-- before, while the job still ran under its fence) found that a parent ran again since its
-- claim: a retry of that parent found the job running and left it, and the give-back would
-- make it claimable beside that parent's new run, or after that run failed, or (a batch's
-- callback) with the counts of the member's first end. It is judged again by its parents as
-- they stand: back to `pending`, counting the parents that have not ended, and its edges
-- unresolved for those alone (their ends count); job_release_decide.sql follows. The parents'
-- rows were locked before the job's (job_release_lock.sql), so none ends or is retried
-- between this look and the commit. Same on SQLite (there the edges take a statement of their
-- own).
WITH edges AS (
    UPDATE porter_job_deps d SET resolved = p.state || '' IN ('completed', 'cancelled', 'discarded')
    FROM porter_jobs p
    WHERE d.child_id = $1 AND p.id = d.parent_id
)
UPDATE porter_jobs j SET
    state = 'pending',
    waiting_for = (SELECT count(*) FROM porter_job_deps d JOIN porter_jobs p ON p.id = d.parent_id
                   WHERE d.child_id = j.id AND p.state || '' NOT IN ('completed', 'cancelled', 'discarded'))
-- By primary key only (see job_complete.sql on `COLLATE "C"`).
WHERE j.id = $1 AND j.state COLLATE "C" = 'available'
