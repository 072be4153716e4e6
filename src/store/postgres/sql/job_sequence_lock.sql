-- Differs from SQLite (whose one writer serializes everything): a transaction-scoped lock on a
-- sequence key, taken by every insert and retry of a job of the sequence and by the
-- porter_jobs_finalized trigger before it promotes the next one (see migration 0007). The
-- first number keeps porter's locks apart from an application's.
-- Taken in the order of the locks' numbers, as every path takes them (see job_complete.sql):
-- the sort is in a subquery, so each lock is taken after it.
-- Also answers whether the transaction reads one snapshot throughout (REPEATABLE READ,
-- SERIALIZABLE: a caller's), for the busy check after it (job_sequence_busy_snapshot.sql).
SELECT count(pg_advisory_xact_lock(1886350450, h)),
       current_setting('transaction_isolation') <> 'read committed'
FROM (SELECT DISTINCT hashtext(k) AS h FROM unnest($1::text[]) AS k ORDER BY 1) keys
