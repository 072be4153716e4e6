-- porter_job_finalized (0014) locks the sequence's next job as it picks it.
--
-- When a sequence's job ends, the trigger takes the sequence's advisory lock and promotes its
-- oldest pending job. It chose that job's id in a subquery that read the pending jobs as they
-- were when its statement began, and then updated the row. A transaction that had changed
-- that job and not yet committed (a workflow's cancel, which does not take the sequence
-- lock, cancelling a step queued in the sequence) made the update wait for the row and then
-- find it no longer pending: it promoted nothing, and every later job of the sequence stayed
-- pending for good. The subquery now locks the row it returns (FOR UPDATE under LIMIT 1):
-- a row changed meanwhile is read again once its writer has committed and, if it is no longer
-- pending, passed over for the next one. SQLite has one writer, which sees every change before
-- it: nothing changes there.
CREATE OR REPLACE FUNCTION porter_job_finalized() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    r RECORD;
BEGIN
    IF NEW.sequence_key IS NOT NULL AND OLD.state <> 'pending' THEN
        PERFORM pg_advisory_xact_lock(1886350450, hashtext(NEW.sequence_key));
        FOR r IN
            UPDATE porter_jobs
            SET state = CASE WHEN scheduled_at <= porter_now() THEN 'available' ELSE 'scheduled' END
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
