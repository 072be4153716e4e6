-- Differs from SQLite (whose one writer serializes everything): a transaction-scoped lock on a
-- sequence key, taken by every insert and retry of a job of the sequence and by the
-- porter_jobs_finalized trigger before it promotes the next one (see migration 0006). The
-- first number keeps porter's locks apart from an application's.
SELECT pg_advisory_xact_lock(1886350450, hashtext(k)) FROM unnest($1::text[]) AS k ORDER BY k
