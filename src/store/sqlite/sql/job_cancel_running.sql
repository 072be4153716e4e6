-- Fenced: a running job cancels itself, keeping the reason in its history.
UPDATE porter_jobs SET
    state = 'cancelled',
    finalized_at = porter_now(),
    -- ?5: whether its handler ran; a job cancelled while it waited for a slot did not, and its
    -- entry says so, as a give-back's (job_release.sql).
    errors = json_insert(CASE WHEN NOT json_valid(errors) THEN '[]' WHEN json_type(errors) = 'array' THEN errors ELSE '[]' END, '$[#]',
                         CASE WHEN ?5 THEN json_object('attempt', attempt, 'at', porter_now(), 'error', ?4)
                              ELSE json_object('attempt', attempt, 'at', porter_now(), 'error', ?4, 'unstarted', json('true')) END)
WHERE id = ?1 AND state = 'running' AND attempt = ?2 AND attempted_by = ?3
RETURNING *
