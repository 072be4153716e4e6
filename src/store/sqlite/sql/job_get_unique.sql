SELECT * FROM porter_jobs
WHERE unique_key = ?1 AND state IN ('available','scheduled','running','retryable','pending')
