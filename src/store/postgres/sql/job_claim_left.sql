-- After a limited claim took fewer than asked: whether due jobs it could run were left (held
-- back by a limit, not by an empty queue).
SELECT EXISTS (
    SELECT 1 FROM porter_jobs
    WHERE state = 'available' AND queue = $1 AND scheduled_at <= porter_now()
      AND kind = ANY($2::text[])
      -- A job a plain INSERT gave a billion attempts is never claimed: its next attempt would
      -- pass porter_jobs_values_porter_reads (0037), and fail the claim of the whole queue.
      AND attempt < 1000000000
)
