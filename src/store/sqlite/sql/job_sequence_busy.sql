-- Whether a sequence has an unfinished job (active or waiting): a new job of it then waits.
SELECT EXISTS (SELECT 1 FROM porter_jobs WHERE sequence_key = ?1
               AND state IN ('available','scheduled','running','retryable','pending'))
