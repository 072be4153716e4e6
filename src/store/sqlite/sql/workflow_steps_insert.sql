-- The steps of workflow ?1, in one statement: ?2 is a JSON array of [name, job id] pairs. A
-- name taken twice fails the insert (the table's primary key), and with it the workflow.
INSERT INTO porter_workflow_steps (workflow_id, step, job_id)
SELECT ?1, s.value ->> 0, s.value ->> 1 FROM json_each(?2) AS s
