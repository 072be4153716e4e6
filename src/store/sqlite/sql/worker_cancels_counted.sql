-- SQLite only: the cancel requests counted for running jobs, every worker together, for the
-- change watcher to compare after each commit of another connection (the trigger
-- porter_jobs_cancel_requested counts them; PostgreSQL sends NOTIFY porter_cancel instead).
SELECT coalesce(sum(cancels), 0) FROM porter_workers
