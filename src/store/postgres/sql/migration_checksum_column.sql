-- Whether porter_migrations has its checksum column (added 7 Dec; a table created before
-- lacks it, and gets it under the migration lock).
SELECT EXISTS (SELECT 1 FROM pg_attribute
               WHERE attrelid = 'porter_migrations'::regclass AND attname = 'checksum'
                 AND NOT attisdropped)
