-- How many times queue ?1 was paused or given other limits (migration 0051); no row: none.
SELECT changes FROM porter_queues WHERE name = ?1
