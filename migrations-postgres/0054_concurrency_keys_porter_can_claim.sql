-- A concurrency key longer than porter's 255 bytes, written by a plain INSERT (the library,
-- the CLI, the admin API and porter_enqueue refuse one), is refused from now on. Such a key goes
-- into porter_jobs_running_key when its job is claimed, and an index entry holds at most about
-- 2.7 kB: a row with a longer key that compresses poorly went in `available`, and then every
-- claim that reached it failed as a whole ("index row requires ... bytes"), for good, and no job
-- of its queue ran.
-- An insert of a job to run (not one inserted ended, as `porter copy` writes finished jobs) is
-- refused by a trigger, not a CHECK: a check holds for every later version of a row, and rows
-- already holding such a key (which ran, when their key compressed into the index) could then no
-- longer be completed, failed, retried or rescued; one such running row failed every pass of the
-- lost workers' rescue. The WHEN clause is evaluated without calling the function, so inserts
-- with shorter keys pay nothing more. Rows already there are left as they are.
CREATE OR REPLACE FUNCTION porter_jobs_concurrency_key_bytes() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION 'porter_jobs_concurrency_key_bytes: a job''s concurrency key is 1 to 255 bytes (this one is %)',
        octet_length(NEW.concurrency_key)
        USING ERRCODE = 'check_violation';
END
$fn$;
-- (Its path, as every porter function's: see 0052.)
DO $do$
BEGIN
    EXECUTE format('ALTER FUNCTION porter_jobs_concurrency_key_bytes() SET search_path = %I, pg_temp',
                   current_schema());
END
$do$;
CREATE TRIGGER porter_jobs_concurrency_key_bytes BEFORE INSERT ON porter_jobs
    FOR EACH ROW
    WHEN (octet_length(NEW.concurrency_key) > 255
          AND NEW.state IN ('available', 'scheduled', 'retryable', 'pending', 'running'))
    EXECUTE FUNCTION porter_jobs_concurrency_key_bytes();
