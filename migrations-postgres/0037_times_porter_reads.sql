-- Rows whose times porter cannot read, refused from now on, and the ones already there repaired
-- first. A plain INSERT could write a time of ±infinity (or past the years chrono holds):
-- reading it panicked inside the database driver, and the worker process stopped; the claim had
-- committed, and the jobs it took with that row stayed `running` until the next worker put them
-- back, after which it stopped the same way.
--
-- Repairs: a due time of -infinity reads as the job's creation (due long ago), +infinity and
-- years past 99999 as porter's latest time (9999-12-31T23:59:59.999Z: never due in practice);
-- a creation, start or end time beyond reading as now. The check is NOT VALID as 0033's: the
-- rows were repaired above, and validating would scan the table again under a lock.
--
-- Attempt counts get no check: porter's own writes add one to them (a claim to `attempt`; a
-- release, snooze or rescue to `max_attempts`), so any bound a plain INSERT may reach would be
-- passed by porter's next write and fail it. Instead the claims take no job whose counts are a
-- billion or more (job_claim.sql), and a retry keeps `attempt + 1` within `integer`.
UPDATE porter_jobs SET
    created_at   = CASE WHEN isfinite(created_at) AND created_at < '100000-01-01Z' THEN created_at ELSE now() END,
    scheduled_at = CASE WHEN isfinite(scheduled_at) AND scheduled_at < '100000-01-01Z' THEN scheduled_at
                        WHEN scheduled_at = '-infinity' AND isfinite(created_at) AND created_at < '100000-01-01Z' THEN created_at
                        WHEN scheduled_at = '-infinity' THEN now()
                        ELSE '9999-12-31T23:59:59.999Z' END,
    attempted_at = CASE WHEN attempted_at IS NULL OR (isfinite(attempted_at) AND attempted_at < '100000-01-01Z')
                        THEN attempted_at ELSE now() END,
    finalized_at = CASE WHEN finalized_at IS NULL OR (isfinite(finalized_at) AND finalized_at < '100000-01-01Z')
                        THEN finalized_at ELSE now() END
WHERE NOT (isfinite(created_at) AND created_at < '100000-01-01Z'
           AND isfinite(scheduled_at) AND scheduled_at < '100000-01-01Z'
           AND (attempted_at IS NULL OR (isfinite(attempted_at) AND attempted_at < '100000-01-01Z'))
           AND (finalized_at IS NULL OR (isfinite(finalized_at) AND finalized_at < '100000-01-01Z')));
ALTER TABLE porter_jobs ADD CONSTRAINT porter_jobs_times_porter_reads CHECK (
    isfinite(created_at) AND created_at < '100000-01-01Z'
    AND isfinite(scheduled_at) AND scheduled_at < '100000-01-01Z'
    AND (attempted_at IS NULL OR (isfinite(attempted_at) AND attempted_at < '100000-01-01Z'))
    AND (finalized_at IS NULL OR (isfinite(finalized_at) AND finalized_at < '100000-01-01Z'))
) NOT VALID;
