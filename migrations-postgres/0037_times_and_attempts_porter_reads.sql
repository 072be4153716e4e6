-- Rows whose times or attempt counts porter cannot read or step on, refused from now on, and
-- the ones already there repaired first. A plain INSERT could write a time of ±infinity (or
-- past the years chrono holds): reading it panicked inside the database driver, and the
-- worker process stopped; the claim had committed, and the jobs it took with that row stayed
-- `running` until the next worker put them back, after which it stopped the same way. An
-- attempt count at the top of `integer` failed every claim of its queue (`attempt + 1`
-- overflowed), and a max_attempts there failed the release that gives a job back.
--
-- Repairs: a time of -infinity reads as the job's creation (due long ago), +infinity and
-- years past 99999 as porter's latest time (9999-12-31T23:59:59.999Z: never due in practice);
-- a creation time beyond reading as now; attempts of a billion or more as one less, so that
-- the next claim stays within the check (the claims take no job of a billion attempts: see
-- job_claim.sql). The check is
-- NOT VALID as 0033's: the rows were repaired above, and validating would scan the table
-- again under a lock.
UPDATE porter_jobs SET
    created_at   = CASE WHEN isfinite(created_at) AND created_at < '100000-01-01Z' THEN created_at ELSE now() END,
    scheduled_at = CASE WHEN isfinite(scheduled_at) AND scheduled_at < '100000-01-01Z' THEN scheduled_at
                        WHEN scheduled_at = '-infinity' AND isfinite(created_at) AND created_at < '100000-01-01Z' THEN created_at
                        WHEN scheduled_at = '-infinity' THEN now()
                        ELSE '9999-12-31T23:59:59.999Z' END,
    attempted_at = CASE WHEN attempted_at IS NULL OR (isfinite(attempted_at) AND attempted_at < '100000-01-01Z')
                        THEN attempted_at ELSE now() END,
    finalized_at = CASE WHEN finalized_at IS NULL OR (isfinite(finalized_at) AND finalized_at < '100000-01-01Z')
                        THEN finalized_at ELSE now() END,
    attempt      = LEAST(GREATEST(attempt, 0), 999999999),
    max_attempts = LEAST(max_attempts, 1000000000)
WHERE NOT (isfinite(created_at) AND created_at < '100000-01-01Z'
           AND isfinite(scheduled_at) AND scheduled_at < '100000-01-01Z'
           AND (attempted_at IS NULL OR (isfinite(attempted_at) AND attempted_at < '100000-01-01Z'))
           AND (finalized_at IS NULL OR (isfinite(finalized_at) AND finalized_at < '100000-01-01Z'))
           AND attempt BETWEEN 0 AND 999999999
           AND max_attempts <= 1000000000);
ALTER TABLE porter_jobs ADD CONSTRAINT porter_jobs_values_porter_reads CHECK (
    isfinite(created_at) AND created_at < '100000-01-01Z'
    AND isfinite(scheduled_at) AND scheduled_at < '100000-01-01Z'
    AND (attempted_at IS NULL OR (isfinite(attempted_at) AND attempted_at < '100000-01-01Z'))
    AND (finalized_at IS NULL OR (isfinite(finalized_at) AND finalized_at < '100000-01-01Z'))
    AND attempt BETWEEN 0 AND 1000000000
    AND max_attempts <= 1000000000
) NOT VALID;
