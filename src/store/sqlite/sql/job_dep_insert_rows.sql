-- Many edges in one statement: /*ROWS*/ stands for the rows, `(?,?,?,?)` each (child, parent,
-- after_any, resolved as job_dep_insert.sql takes them), at most SQLITE_MAX_VARIABLE_NUMBER
-- variables in all (the code cuts a larger batch).
INSERT INTO porter_job_deps (child_id, parent_id, after_any, resolved) VALUES /*ROWS*/
