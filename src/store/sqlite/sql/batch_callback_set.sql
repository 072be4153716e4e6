UPDATE porter_batches SET callback_id = ?2 WHERE id = ?1
