SELECT name, paused_at FROM porter_queues
UNION
SELECT DISTINCT queue, NULL FROM porter_jobs WHERE queue NOT IN (SELECT name FROM porter_queues)
ORDER BY name
