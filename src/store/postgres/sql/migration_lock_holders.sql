-- The sessions a migration that gave way on a lock (55P03) most likely waited for: those of
-- this database whose transaction has been open longer than the migration waited. Named in its
-- warning, for an operator to end them (an idle-in-transaction session, a long report). $1 is
-- the wait in milliseconds.
SELECT pid::bigint,
       coalesce(state, '') AS state,
       (extract(epoch FROM clock_timestamp() - xact_start) * 1000)::bigint AS open_ms,
       coalesce(application_name, '') AS application
FROM pg_stat_activity
WHERE datname = current_database()
  AND pid <> pg_backend_pid()
  AND xact_start < clock_timestamp() - make_interval(secs => $1::bigint / 1000.0)
ORDER BY xact_start
LIMIT 5
