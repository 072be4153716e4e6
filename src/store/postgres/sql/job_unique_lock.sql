-- Differs from SQLite (whose one writer serializes everything): a transaction-scoped lock on
-- each unique key of an insert that takes two or more, before any of its rows. Two inserts
-- whose keys meet in opposite orders otherwise each wait at their second key for the other's
-- uncommitted row, and PostgreSQL ends one of them with "deadlock detected". In the order of
-- the locks' numbers, so the second insert waits at its first shared key instead, for the
-- first to commit, and then finds the key held. The first number keeps these apart from the
-- sequences' locks (job_sequence_lock.sql) and from an application's; an insert takes these
-- before any sequence's.
SELECT count(pg_advisory_xact_lock(1886350451, h))
FROM (SELECT DISTINCT hashtext(k) AS h FROM unnest($1::text[]) AS k ORDER BY 1) keys
