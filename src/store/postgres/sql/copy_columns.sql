-- porter copy: a table's columns in order with their types, and each one's place in the
-- primary key counted from 1 (0 when it is not part of it; int2vector counts from 0).
SELECT a.attname::text,
       format_type(a.atttypid, a.atttypmod),
       coalesce(array_position(i.indkey::int2[], a.attnum) - array_lower(i.indkey::int2[], 1) + 1, 0)::int
FROM pg_attribute a
LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
WHERE a.attrelid = (quote_ident(current_schema()) || '.' || quote_ident($1))::regclass
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
