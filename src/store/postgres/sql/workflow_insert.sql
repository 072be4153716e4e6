-- A workflow's row (its steps are inserted after it, in the same transaction).
INSERT INTO porter_workflows (name, created_at) VALUES ($1, porter_now())
RETURNING id
