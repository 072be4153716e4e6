-- porter bench: whether a queue has a job still to do; stops at the first entry it finds in
-- porter_jobs_fetch, so the drain can ask it every millisecond or so.
SELECT EXISTS (SELECT 1 FROM porter_jobs WHERE state IN ('pending','available','running') AND queue = $1)
