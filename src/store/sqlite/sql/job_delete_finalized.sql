-- One bounded batch of one final state; ?2 is a modifier like '-86400.000 seconds'.
DELETE FROM porter_jobs WHERE id IN (
    SELECT id FROM porter_jobs
    WHERE state = ?1 AND finalized_at < strftime('%Y-%m-%dT%H:%M:%fZ','now', ?2)
    LIMIT ?3
)
