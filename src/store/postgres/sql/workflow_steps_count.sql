-- How many steps workflow $1 has in porter_workflow_steps, whether or not their jobs are there
-- (by its primary key alone; compared with the counts of its jobs, it tells whether a step
-- whose job is gone is among them).
SELECT count(*) FROM porter_workflow_steps WHERE workflow_id = $1
