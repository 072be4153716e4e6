-- What a job recorded while it ran (issue 15.5): its output and its progress. Same table and
-- meaning as migrations-sqlite/0005_job_outputs.sql (see there).
CREATE TABLE porter_job_outputs (
    job_id     BIGINT PRIMARY KEY REFERENCES porter_jobs (id) ON DELETE CASCADE,
    output     JSONB,
    progress   JSONB,
    updated_at TIMESTAMPTZ NOT NULL
);
