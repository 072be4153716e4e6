-- The counts a callback gets when it becomes due (see porter_batch_callback_due of migration
-- 0011), for a callback that was due at insert: every member had already ended.
UPDATE porter_jobs c SET args = c.args || (
    SELECT jsonb_build_object(
               'completed', count(*) FILTER (WHERE m.state = 'completed'),
               'cancelled', count(*) FILTER (WHERE m.state = 'cancelled'),
               'discarded', count(*) FILTER (WHERE m.state = 'discarded'))
    FROM porter_jobs m WHERE m.batch_id = $1 AND m.id <> $2)
WHERE c.id = $2 AND c.state IN ('available','scheduled')
