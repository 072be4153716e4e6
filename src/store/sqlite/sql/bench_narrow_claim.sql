-- porter bench's narrow baseline only: bench_raw_claim.sql on the narrow table.
UPDATE porter_bench_narrow
SET state = 1, attempt = attempt + 1,
    attempted_at = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER), attempted_by = ?2
WHERE id IN (
    SELECT id FROM porter_bench_narrow
    WHERE state = 0 AND queue = ?1
    ORDER BY priority, scheduled_at, id
    LIMIT ?3
)
RETURNING id, attempt
