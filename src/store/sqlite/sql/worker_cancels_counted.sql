-- SQLite only: the cancel requests counted for each worker's running jobs, for the change
-- watcher to compare after each commit of another connection (the trigger
-- porter_jobs_cancel_requested counts them; PostgreSQL sends NOTIFY porter_cancel instead).
-- A row another program wrote that porter cannot read (a NULL id, a count that is not an
-- integer) is passed over: failing the whole read made every commit news for every worker.
SELECT id, cancels FROM porter_workers
WHERE typeof(id) = 'text' AND typeof(cancels) = 'integer'
