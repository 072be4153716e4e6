-- What porter 0.1 (which kept its versions in _sqlx_migrations) applied, as the current schema
-- shows it (never another schema on the search path): how many of the four tables its first
-- migration made are there, whether its second made porter_now(), whether its third added
-- porter_workers.lease_ms.
SELECT (SELECT count(*)
        FROM unnest(ARRAY['porter_jobs', 'porter_queues', 'porter_workers', 'porter_periodic']) AS t(name)
        WHERE to_regclass(quote_ident(current_schema()) || '.' || t.name) IS NOT NULL)::int8,
       coalesce(to_regprocedure(quote_ident(current_schema()) || '.porter_now()') IS NOT NULL, false),
       EXISTS (SELECT 1 FROM pg_attribute
               WHERE attrelid = to_regclass(quote_ident(current_schema()) || '.porter_workers')
                 AND attname = 'lease_ms' AND NOT attisdropped);
