-- ?4 is an absolute due time or NULL; ?5 a modifier like '+30.000 seconds' for a delay.
-- A unique key held by an unfinished job makes this insert nothing (no error): the caller then
-- reads the holder with job_get_unique.sql.
INSERT INTO porter_jobs (kind, queue, args, state, priority, max_attempts, scheduled_at, unique_key, metadata)
VALUES (
    ?1, ?2, ?3,
    CASE WHEN COALESCE(?4, strftime('%Y-%m-%dT%H:%M:%fZ','now', ?5)) <= strftime('%Y-%m-%dT%H:%M:%fZ','now') THEN 'available' ELSE 'scheduled' END,
    ?6, ?7,
    COALESCE(?4, strftime('%Y-%m-%dT%H:%M:%fZ','now', ?5)),
    ?8, ?9
)
ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND state IN ('available','scheduled','running','retryable')
DO NOTHING
RETURNING *
