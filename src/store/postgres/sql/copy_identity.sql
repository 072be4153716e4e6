-- porter copy: names this database (and schema), to refuse copying it onto itself.
SELECT current_database() || '/' || current_schema() || '@'
       || coalesce(host(inet_server_addr()), 'local socket') || ':'
       || coalesce(inet_server_port(), 0)::text
