-- porter copy: names this database and schema, to refuse copying it onto itself: the same
-- names on the same server (its port and start time; the address a client used may differ,
-- and a Unix socket has none).
SELECT current_database() || '/' || current_schema() || ' port ' || current_setting('port')
       || ' up since ' || pg_postmaster_start_time()::text
