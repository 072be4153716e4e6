SELECT id, name, created_at FROM porter_workflows WHERE id = $1
