-- porter copy: the tables it copies, in the schema the connection uses. Every table of
-- porter's and the app's, except each database's own migration bookkeeping and the live
-- workers (they register again).
SELECT table_name::text FROM information_schema.tables
WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
  AND (table_name LIKE 'porter\_%' OR table_name LIKE 'tablo%')
  AND table_name NOT IN ('porter_migrations', 'porter_workers')
ORDER BY table_name
