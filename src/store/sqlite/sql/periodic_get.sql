SELECT last_slot FROM porter_periodic WHERE name = ?1
