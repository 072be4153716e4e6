-- porter_jobs_running_key (0006) and porter_jobs_running (0001) had the same predicate,
-- `state = 'running'`, so the planner could answer a worker's lookup of its running jobs
-- (job_list_running.sql, job_cancel_requests.sql) by walking every entry of
-- porter_jobs_running_key and filtering. It did so whenever the table's statistics said no
-- job runs (an ANALYZE at an idle moment): both indexes then cost the same, and the tie went
-- to the wrong one. With a transaction held open elsewhere, that walk read every running
-- entry not yet vacuumed (thousands), and the reconcile's bound by claim time did nothing.
-- `queue IS NOT NULL` holds for every row (the column is NOT NULL); it is there so that only
-- a query naming a queue (the limited claim's count of running jobs) can use this index.
-- The table's strongest lock is taken first (DROP INDEX takes it): building the new index
-- before dropping the old one would take a weaker lock first and upgrade it, and a
-- transaction that read porter_jobs in between and then writes it (a retention pass, a
-- retry) would deadlock with the migration. Readers wait for the build.
DROP INDEX porter_jobs_running_key;
CREATE INDEX porter_jobs_running_key ON porter_jobs (queue, concurrency_key)
    WHERE state = 'running' AND queue IS NOT NULL;
