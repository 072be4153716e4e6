-- After a limited claim took fewer than asked: whether due jobs it could run were left (held
-- back by a limit, not by an empty queue).
SELECT EXISTS (
    SELECT 1 FROM porter_jobs
    WHERE state = 'available' AND queue = $1 AND scheduled_at <= porter_now()
      AND kind = ANY($2::text[])
      -- A job a plain INSERT gave a billion attempts (or allowed attempts) or more is never
      -- claimed: near the top of `integer`, the claim's `attempt + 1` would fail the claim of
      -- the whole queue, and a release's `max_attempts + 1` the give-back (0037).
      AND attempt < 1000000000 AND max_attempts < 1000000000
)
