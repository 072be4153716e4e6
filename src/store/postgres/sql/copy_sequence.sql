-- porter copy: the sequence a column's ids come from, if any (serial or identity).
SELECT pg_get_serial_sequence(quote_ident(current_schema()) || '.' || quote_ident($1), $2)
