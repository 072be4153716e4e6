-- A page of batches, newest first (below ?1 when given, at most ?2, or only batch ?3), with
-- their callback and their members' counts by state: one row per (batch, member state), one
-- row with a NULL state for a batch with no member left.
SELECT b.id, b.created_at, b.on_success, b.members, b.callback_id, c.kind, c.state, m.state, count(m.id)
FROM (SELECT * FROM porter_batches
      WHERE (?3 IS NULL OR id = ?3) AND (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2) b
LEFT JOIN porter_jobs c ON c.id = b.callback_id
LEFT JOIN porter_jobs m ON m.batch_id = b.id AND m.id IS NOT b.callback_id
GROUP BY b.id, m.state
ORDER BY b.id DESC
