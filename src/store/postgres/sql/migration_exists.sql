SELECT to_regclass('porter_migrations') IS NOT NULL;
