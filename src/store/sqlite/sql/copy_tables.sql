-- porter copy: the tables it copies. Every table of porter's and the app's, except each
-- database's own migration bookkeeping and the live workers (they register again).
SELECT name FROM sqlite_master
WHERE type = 'table'
  AND (name LIKE 'porter\_%' ESCAPE '\' OR name LIKE 'tablo%')
  AND name NOT IN ('porter_migrations', 'porter_workers')
ORDER BY name
