-- Differs from SQLite (one key per statement): the holders of every key of a batch at once.
SELECT * FROM porter_jobs
WHERE unique_key = ANY($1::text[]) AND state IN ('available','scheduled','running','retryable','pending')
