DELETE FROM tablos WHERE id = ?1
