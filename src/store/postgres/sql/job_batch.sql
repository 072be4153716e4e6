-- The batch job $1 belongs to, and whether it is the batch's callback (else a member).
SELECT j.batch_id, b.callback_id = j.id
FROM porter_jobs j LEFT JOIN porter_batches b ON b.id = j.batch_id
WHERE j.id = $1 AND j.batch_id IS NOT NULL
