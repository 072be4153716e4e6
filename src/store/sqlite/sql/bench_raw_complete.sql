-- porter bench's baseline only: the same fenced completion as job_complete.sql.
UPDATE porter_jobs SET state = 'completed', finalized_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')
WHERE id = ?1 AND state = 'running' AND attempt = ?2 AND attempted_by = ?3
