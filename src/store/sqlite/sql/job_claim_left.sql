-- After a limited claim took fewer than asked: whether due jobs it could run were left (held
-- back by a limit, not by an empty queue).
SELECT EXISTS (
    SELECT 1 FROM porter_jobs
    WHERE state = 'available' AND queue = ?1 AND scheduled_at <= porter_now()
      AND kind IN (SELECT value FROM json_each(?2))
      -- A job whose attempt count another program set to what porter cannot count on (not a
      -- whole number, a billion or more as on PostgreSQL, or below 32 bits' range) is never
      -- claimed: the claim's `attempt + 1` would not read back as a count, nor could its
      -- fences match it.
      AND typeof(attempt) = 'integer' AND attempt BETWEEN -2147483648 AND 999999999
)
