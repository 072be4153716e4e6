-- porter bench's narrow baseline only: bench_raw_complete.sql on the narrow table.
UPDATE porter_bench_narrow SET state = 2, finalized_at = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
WHERE id = ?1 AND state = 1 AND attempt = ?2 AND attempted_by = ?3
