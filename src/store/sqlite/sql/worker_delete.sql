DELETE FROM porter_workers WHERE id = ?1
