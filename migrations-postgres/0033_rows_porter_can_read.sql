-- A row inserted by another program (psql, a plain INSERT rather than porter_enqueue) whose
-- `errors` was not a JSON array made every claim of its queue fail, for good, and `porter jobs
-- list` with it, until someone found and deleted it. Such a row is refused now. (Only the
-- top-level type is checked: entries porter cannot read inside an array still break it. The
-- times are typed here; on SQLite, migrations-sqlite/0033 says why nothing is checked.)
-- Rows already so broken are repaired first, their unreadable history emptied: they could not
-- be read, nor, under the check, be updated (a cancel, a retry, the claim that clears them).
-- NOT VALID: with them repaired, no second scan of the table is needed to prove the rest.
UPDATE porter_jobs SET errors = '[]'::jsonb WHERE jsonb_typeof(errors) <> 'array';
ALTER TABLE porter_jobs ADD CONSTRAINT porter_jobs_errors_array
    CHECK (jsonb_typeof(errors) = 'array') NOT VALID;
