-- porter bench: a queue's jobs still to do, from the fetch index (porter_jobs_fetch), so
-- polling it costs little while a drain runs.
SELECT count(*) FROM porter_jobs WHERE state IN ('pending','available','running') AND queue = $1
