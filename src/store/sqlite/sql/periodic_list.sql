-- Metadata is read as CAST(metadata AS TEXT): a BLOB holding JSON text (another program's,
-- through an SQLite before 3.45) is otherwise read as binary JSON (review of 7 Dec).
-- Each schedule with the job of its last slot (the periodic enqueuer's metadata names both);
-- newest first, so the scan stops at the first match, which is recent.
SELECT p.name, p.last_slot,
       (SELECT j.id FROM porter_jobs j
         WHERE json_extract(CAST(j.metadata AS TEXT), '$.periodic') = p.name
           AND json_extract(CAST(j.metadata AS TEXT), '$.slot') = p.last_slot
         ORDER BY j.id DESC LIMIT 1)
FROM porter_periodic p
ORDER BY p.name
