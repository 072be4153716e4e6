-- porter bench: a queue's jobs still to do, read from the fetch index (two short ranges of
-- porter_jobs_fetch), never a table scan, so polling it costs little while a drain runs.
SELECT count(*) FROM porter_jobs WHERE state IN ('available','running') AND queue = ?1
