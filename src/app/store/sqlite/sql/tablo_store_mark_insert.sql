-- The database's object store mark, written once (a second writer keeps the first's).
INSERT INTO tablo_store_mark (singleton, mark) VALUES (1, ?1) ON CONFLICT (singleton) DO NOTHING
