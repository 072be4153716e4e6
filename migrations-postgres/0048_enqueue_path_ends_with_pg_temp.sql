-- porter_enqueue's tables resolve in porter's schema whatever the caller's search path (0008,
-- set again by each migration that replaced the function, last 0045). But PostgreSQL searches
-- the session's temporary schema before any schema of a path that does not name it: a caller
-- with a temporary table named `porter_jobs` had its job inserted there, answered as inserted,
-- while no worker ever saw it (review of 4 Dec). Naming `pg_temp` last makes it searched last,
-- after porter's own tables (functions and operators are never looked up there).
DO $do$
BEGIN
    EXECUTE format('ALTER FUNCTION porter_enqueue(text, jsonb, text, integer, integer, timestamptz, text, text, text, bigint[], boolean, jsonb) '
                   'SET search_path = %I, pg_temp', current_schema());
END
$do$;
