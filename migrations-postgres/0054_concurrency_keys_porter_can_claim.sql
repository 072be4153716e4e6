-- A concurrency key longer than porter's 255 bytes, written by a plain INSERT (the library,
-- the CLI, the admin API and porter_enqueue refuse one), is refused from now on. Such a key goes
-- into porter_jobs_running_key when its job is claimed, and an index entry holds at most about
-- 2.7 kB: a row with a longer key that compresses poorly went in `available`, and then every
-- claim that reached it failed as a whole ("index row requires ... bytes"), for good, and no job
-- of its queue ran.
-- Unfinished rows already holding such a key could never be claimed: they are discarded first,
-- saying why (their children and batches learn of the end as of any other). NOT VALID: finished
-- rows keep their key, and validating would scan the table under a lock.
UPDATE porter_jobs SET
    state = 'discarded',
    finalized_at = porter_now(),
    errors = errors || jsonb_build_array(jsonb_build_object('attempt', attempt, 'at', porter_now(),
        'error', 'its concurrency key is longer than 255 bytes (written by another program?): no claim can take it'))
WHERE octet_length(concurrency_key) > 255
  AND state IN ('available', 'scheduled', 'retryable', 'pending');
ALTER TABLE porter_jobs ADD CONSTRAINT porter_jobs_concurrency_key_bytes
    CHECK (octet_length(concurrency_key) <= 255) NOT VALID;
