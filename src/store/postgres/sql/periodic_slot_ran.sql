-- Whether a job of periodic job $1 for slot $2 (Unix ms) is recorded. Asked only when a mark
-- left by a clock that ran ahead is replaced (rare): the slot due then may have run before
-- the clock jumped. A scan of the jobs: no index holds their metadata. `->>` reads NULL from
-- metadata another program wrote as no object.
SELECT EXISTS (SELECT 1 FROM porter_jobs WHERE metadata ->> 'periodic' = $1 AND metadata ->> 'slot' = $2::bigint::text)
