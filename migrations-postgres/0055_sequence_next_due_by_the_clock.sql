-- porter_job_finalized (0030), the function whole again, with one change: a sequence's next
-- job, promoted as the job before it ends, is due (available, with a wake-up) when its due
-- time has come by the clock at that moment, not by porter_now(), the start of the ending
-- statement. A statement that ends jobs of several sequences takes their locks first, in the
-- order of the locks' numbers, and may wait for one held elsewhere (an insert into that
-- sequence, a bulk action): a next job inserted meanwhile into another of its sequences was
-- due after that start, went `scheduled`, sent no NOTIFY and waited for a producer's poll,
-- where the README promises a wake-up (review of 6 Dec; 0042 made the same change for the
-- children of dependencies). A test clock (porter.now) is used as before. SQLite has one
-- writer, whose trigger runs after every insert it can see: nothing changes there
-- (migrations-sqlite/0055_sequence_next_due_by_the_clock.sql). CREATE OR REPLACE drops the
-- function's settings: its search path (0052) is set again below.
CREATE OR REPLACE FUNCTION porter_job_finalized() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    r RECORD;
BEGIN
    IF NEW.sequence_key IS NOT NULL AND OLD.state <> 'pending' THEN
        PERFORM pg_advisory_xact_lock(1886350450, hashtext(NEW.sequence_key));
        FOR r IN
            UPDATE porter_jobs
            SET state = CASE WHEN scheduled_at <= coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, clock_timestamp())
                             THEN 'available' ELSE 'scheduled' END
            WHERE id = (SELECT id FROM porter_jobs WHERE sequence_key = NEW.sequence_key AND state = 'pending'
                        ORDER BY id LIMIT 1 FOR UPDATE)
              AND state = 'pending'
              AND NOT EXISTS (SELECT 1 FROM porter_jobs WHERE sequence_key = NEW.sequence_key
                              AND state IN ('available','scheduled','running','retryable'))
            RETURNING queue, state
        LOOP
            IF r.state = 'available' THEN
                PERFORM pg_notify('porter_insert', r.queue);
            END IF;
        END LOOP;
    END IF;
    RETURN NULL;
END
$fn$;

DO $do$
BEGIN
    EXECUTE format('ALTER FUNCTION porter_job_finalized() SET search_path = %I, pg_temp', current_schema());
END
$do$;
