-- When queue $1 was last paused or given other limits (migration 0051), or no row.
SELECT changed_at FROM porter_queues WHERE name = $1
