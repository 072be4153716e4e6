INSERT INTO porter_job_deps (child_id, parent_id, after_any, resolved) VALUES (?1, ?2, ?3, ?4)
