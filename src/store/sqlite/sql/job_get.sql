SELECT * FROM porter_jobs WHERE id = ?1
