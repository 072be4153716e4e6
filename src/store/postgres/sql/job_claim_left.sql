-- After a limited claim took fewer than asked: whether due jobs it could run were left (held
-- back by a limit, not by an empty queue).
SELECT EXISTS (
    SELECT 1 FROM porter_jobs
    WHERE state = 'available' AND queue = $1 AND scheduled_at <= porter_now()
      AND kind = ANY($2::text[])
)
