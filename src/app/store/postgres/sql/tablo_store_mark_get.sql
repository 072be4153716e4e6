-- The database's object store mark, if one was written.
SELECT mark FROM tablo_store_mark WHERE singleton = 1
