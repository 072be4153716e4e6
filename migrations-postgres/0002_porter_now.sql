-- Every statement reads the current time through porter_now(): the database's now(), unless
-- the session setting porter.now holds a time (a test's clock; see src/store/clock.rs). A
-- STABLE SQL function of one expression is inlined by the planner, so this costs nothing
-- next to calling now() directly; porter never sets porter.now outside tests.
-- OR REPLACE: a schema reset that dropped porter's tables may leave the function behind.
CREATE OR REPLACE FUNCTION porter_now() RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT coalesce(nullif(current_setting('porter.now', true), '')::timestamptz, now()) $$;
