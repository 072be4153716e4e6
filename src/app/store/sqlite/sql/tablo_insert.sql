INSERT INTO tablos (id, name, created_at) VALUES (?1, ?2, porter_now()) RETURNING id, name, created_at
