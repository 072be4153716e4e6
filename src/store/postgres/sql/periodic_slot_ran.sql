-- Whether a job of periodic job $1 for slot $2 (Unix ms) is recorded. Asked only when a mark
-- left by a clock that ran ahead is replaced (rare): the slot due then may have run before
-- the clock jumped. A scan of the jobs: no index holds their metadata. Compared as JSON
-- values, as SQLite's json_extract compares: the name a string, the slot a number (1.0 is 1;
-- "1" is not). Metadata another program wrote as no object has no keys here.
SELECT EXISTS (SELECT 1 FROM porter_jobs WHERE metadata -> 'periodic' = to_jsonb($1::text) AND metadata -> 'slot' = to_jsonb($2::bigint))
