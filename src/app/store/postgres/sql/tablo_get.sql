SELECT id, name, created_at FROM tablos WHERE id = $1
