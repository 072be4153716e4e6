INSERT INTO porter_job_deps (child_id, parent_id, after_any, resolved)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bool[], $4::bool[])
