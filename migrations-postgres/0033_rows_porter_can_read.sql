-- A row inserted by another program (psql, a plain INSERT rather than porter_enqueue) whose
-- `errors` was not a JSON array made every claim of its queue fail, for good, and `porter jobs
-- list` with it, until someone found and deleted it. Such a row is refused now (times are typed
-- here; migrations-sqlite/0033 also checks their format). NOT VALID: rows already in the table
-- are not read (no scan, no long lock); every new or updated row is checked.
ALTER TABLE porter_jobs ADD CONSTRAINT porter_jobs_errors_array
    CHECK (jsonb_typeof(errors) = 'array') NOT VALID;
