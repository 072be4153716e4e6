-- One bounded batch of one final state; ?2 is a modifier like '-86400.000 seconds'.
-- Unlike PostgreSQL's (see its job_delete_finalized.sql), the pick and the delete need no
-- re-check: the statement runs inside the one writer's BEGIN IMMEDIATE transaction, so no
-- other connection (of this or any process) can retry a job between them.
DELETE FROM porter_jobs WHERE id IN (
    SELECT id FROM porter_jobs
    WHERE state = ?1 AND finalized_at < strftime('%Y-%m-%dT%H:%M:%fZ', porter_now(), ?2)
    LIMIT ?3
)
