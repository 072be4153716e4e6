-- Tags jobs just inserted ($2, ids) as the steps ($3, names) of workflow $1, in one statement
-- (SQLite tags row by row: its statements cost no round trip).
UPDATE porter_jobs j SET workflow_id = $1, workflow_step = s.step
FROM unnest($2::bigint[], $3::text[]) AS s(id, step)
WHERE j.id = s.id
