-- porter's trigger functions name its tables unqualified, and ran with the search path of the
-- session whose statement fired them. Another program's statement on one schema's jobs, from
-- a session whose path names another schema holding porter's tables (a schema per tenant),
-- had the triggers read and write that other schema: a DELETE of one tenant's job deleted the
-- other tenant's edges of the same ids, and an UPDATE completing a parent released the other
-- tenant's waiting child while its own waited for good (review of 6 Dec). Each function now
-- resolves its tables in the schema porter was migrated in, `pg_temp` last (see 0048), as
-- porter_enqueue does. A later migration that replaces one of these functions (CREATE OR
-- REPLACE drops its settings) sets the path again; a test of tests/migrations.rs checks that
-- every function but porter_now() carries it.
DO $do$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY['porter_job_deps_resolve()', 'porter_job_finalized()',
                             'porter_batch_callback_due()', 'porter_jobs_emptied()'] LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', f, current_schema());
    END LOOP;
END
$do$;
