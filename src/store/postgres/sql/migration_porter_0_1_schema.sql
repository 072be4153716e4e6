-- What porter 0.1 (which kept its versions in _sqlx_migrations) applied, as the schema shows
-- it: its first migration made porter_jobs, the second porter_now(), the third added
-- porter_workers.lease_ms.
SELECT to_regclass('porter_jobs') IS NOT NULL,
       to_regprocedure('porter_now()') IS NOT NULL,
       EXISTS (SELECT 1 FROM pg_attribute
               WHERE attrelid = to_regclass('porter_workers') AND attname = 'lease_ms' AND NOT attisdropped);
