-- The steps of workflow $1: jobs ($2, ids) and their names ($3), in one statement. A name
-- taken twice fails the insert (the table's primary key), and with it the workflow.
INSERT INTO porter_workflow_steps (workflow_id, step, job_id)
SELECT $1, s.step, s.id FROM unnest($2::bigint[], $3::text[]) AS s(id, step)
