-- porter bench's baseline only: the same fenced batch completion as job_complete.sql.
UPDATE porter_jobs j SET state = 'completed', finalized_at = now()
FROM unnest($1::bigint[], $2::int[]) AS f(id, attempt)
WHERE j.id = f.id AND j.state = 'running' AND j.attempt = f.attempt AND j.attempted_by = $3
