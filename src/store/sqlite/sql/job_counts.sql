SELECT queue, state, count(*) FROM porter_jobs GROUP BY queue, state
