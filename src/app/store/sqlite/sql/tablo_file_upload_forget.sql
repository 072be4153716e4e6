DELETE FROM tablo_file_uploads WHERE id = ?1
