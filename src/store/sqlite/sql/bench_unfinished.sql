-- porter bench: a queue's jobs still to do (waiting for their parents, available or running),
-- read from the fetch index (three short ranges of porter_jobs_fetch), never a table scan, so
-- polling it costs little while a drain runs.
SELECT count(*) FROM porter_jobs WHERE state IN ('pending','available','running') AND queue = ?1
