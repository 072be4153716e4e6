-- porter bench --workflow, between its cases: the dead row versions of the case before (its
-- jobs, edges and step names, deleted) made reusable, so that each case starts on tables as
-- empty as the first case's, and autovacuum does not start on them during the next case.
VACUUM porter_jobs, porter_job_deps, porter_workflow_steps, porter_workflows
