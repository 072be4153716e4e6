-- Of the jobs $2 (by id: those the worker holds), the running ones of worker $1 whose cancel a
-- user requested (see job_cancel.sql). By primary key (see job_complete.sql on `COLLATE "C"`):
-- a walk of porter_jobs_running by worker read, with a snapshot held open elsewhere, the entry
-- of every job the worker ran since.
-- A request is the key in an object, with a value that is not JSON null, tested as
-- `(metadata ->> 'cancel_requested_at') IS NOT NULL` here and wherever a write asks, as SQLite's
-- `json_extract` and porter's own reading of the row find one: `metadata ? 'cancel_requested_at'`
-- is true too for an array holding that string, or that string alone, and `->` for a null value,
-- which metadata another program wrote can hold.
SELECT id, attempt, attempted_by FROM porter_jobs
WHERE id = ANY($2) AND state COLLATE "C" = 'running' AND attempted_by = $1 AND (metadata ->> 'cancel_requested_at') IS NOT NULL
ORDER BY id
