-- Whether a job of periodic job ?1 for slot ?2 (Unix ms) is recorded. Asked only when a mark
-- left by a clock that ran ahead is replaced (rare): the slot due then may have run before
-- the clock jumped. A scan of the jobs: no index holds their metadata. Only text that is JSON
-- is read (a CASE, so that json_extract never meets a BLOB another program wrote).
SELECT EXISTS (
    SELECT 1 FROM porter_jobs
    WHERE CASE WHEN typeof(metadata) = 'text' AND json_valid(metadata)
               THEN json_extract(metadata, '$.periodic') = ?1 AND json_extract(metadata, '$.slot') = ?2
          END
)
