-- How many cancel requests the running jobs of each worker received. SQLite has no NOTIFY: a
-- worker of another process learns of a request through its change watcher, which wakes on
-- any commit of another connection and reads this column's sum after each. A job about to
-- start asks whether it was cancelled meanwhile only when a request was counted since its
-- claim (a cancel that came in the watcher's pause between two looks of the worker, just
-- before the job's slot freed, let it start: review of 6 Dec). The trigger counts a request
-- however it is written (porter's single, bulk or workflow cancel, an operator's UPDATE).
ALTER TABLE porter_workers ADD COLUMN cancels INTEGER NOT NULL DEFAULT 0;

CREATE TRIGGER porter_jobs_cancel_requested AFTER UPDATE OF metadata ON porter_jobs
WHEN NEW.state = 'running' AND NEW.attempted_by IS NOT NULL
 AND json_extract(NEW.metadata, '$.cancel_requested_at') IS NOT NULL
 AND json_extract(OLD.metadata, '$.cancel_requested_at') IS NULL
BEGIN
    UPDATE porter_workers SET cancels = cancels + 1 WHERE id = NEW.attempted_by;
END;
