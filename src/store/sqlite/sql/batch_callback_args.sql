-- The counts a callback gets when it becomes due (see the trigger porter_batch_callback_due of
-- migration 0011), for a callback that was due at insert: every member had already ended.
UPDATE porter_jobs
SET args = json_set(args,
    '$.completed', (SELECT count(*) FROM porter_jobs m WHERE m.batch_id = ?1 AND m.id <> ?2 AND m.state = 'completed'),
    '$.cancelled', (SELECT count(*) FROM porter_jobs m WHERE m.batch_id = ?1 AND m.id <> ?2 AND m.state = 'cancelled'),
    '$.discarded', (SELECT count(*) FROM porter_jobs m WHERE m.batch_id = ?1 AND m.id <> ?2 AND m.state = 'discarded'))
WHERE id = ?2 AND state IN ('available','scheduled')
