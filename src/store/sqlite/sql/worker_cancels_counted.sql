-- SQLite only: the cancel requests counted for each worker's running jobs, for the change
-- watcher to compare after each commit of another connection (the trigger
-- porter_jobs_cancel_requested counts them; PostgreSQL sends NOTIFY porter_cancel instead).
SELECT id, cancels FROM porter_workers
