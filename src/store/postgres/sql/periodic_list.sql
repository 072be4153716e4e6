-- Each schedule with the job of its last slot (the periodic enqueuer's metadata names both);
-- newest first, so the scan stops at the first match, which is recent.
SELECT p.name, p.last_slot,
       (SELECT j.id FROM porter_jobs j
         WHERE j.metadata->>'periodic' = p.name
           AND j.metadata->'slot' = to_jsonb(p.last_slot)
         ORDER BY j.id DESC LIMIT 1) AS last_job_id
FROM porter_periodic p
ORDER BY p.name
