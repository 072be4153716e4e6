-- The upload becomes a file of its tablo in one statement, unless it began longer ago than the
-- grace ($2 seconds): then the cleanup owns it; or unless its tablo is gone: then the upload is
-- left for its caller (or, past the grace, the cleanup) to remove with its object. The tablo's
-- row is locked (KEY SHARE) first: a delete of the tablo committing meanwhile is waited for and
-- then seen, and one that comes after waits for this commit, so that the cleanup job it
-- enqueues finds this file. Differs from SQLite, which needs two statements in its write
-- transaction. A cleanup deleting the same upload row at once waits for this one's row lock and
-- then finds it gone (or the other way round): never both.
WITH t AS MATERIALIZED (
    SELECT t.id FROM tablos t
    WHERE t.id = (SELECT tablo_id FROM tablo_file_uploads WHERE id = $1)
    FOR KEY SHARE
), u AS (
    DELETE FROM tablo_file_uploads
    WHERE id = $1 AND created_at >= porter_now() - $2::float8 * interval '1 second'
      AND tablo_id IN (SELECT id FROM t)
    RETURNING id, tablo_id, s3_key, size
)
INSERT INTO tablo_files (id, tablo_id, s3_key, size, created_at)
SELECT id, tablo_id, s3_key, size, porter_now() FROM u
RETURNING id, tablo_id, s3_key, size, created_at
