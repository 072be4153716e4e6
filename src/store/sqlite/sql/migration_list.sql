SELECT version, checksum FROM porter_migrations WHERE set_name = ?1 ORDER BY version;
