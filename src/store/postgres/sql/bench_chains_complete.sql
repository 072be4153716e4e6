-- porter bench --workflow's hand-written baseline only: a batch of completions fenced on the
-- attempt, and the jobs that waited for the completed ones made claimable, in one statement.
-- Returns how many were completed.
WITH done AS (
    UPDATE porter_bench_chains m SET state = 2
    FROM unnest($1::bigint[], $2::int[]) AS f(id, attempt)
    WHERE m.id = f.id AND m.state = 1 AND m.attempt = f.attempt
    RETURNING m.id
), ready AS (
    UPDATE porter_bench_chains c SET state = 0
    FROM done WHERE c.after = done.id AND c.state = 3
)
SELECT count(*) FROM done
