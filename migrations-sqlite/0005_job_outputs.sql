-- What a job recorded while it ran (issue 15.5): its output (JSON, at most 256 KiB, checked
-- before any write) and its progress (JSON, written at most about once a second per job). In a
-- table of their own, beside porter_jobs: the claim and every list read porter_jobs rows, and
-- an output of up to 256 KiB has no business in those reads. Written fenced (only by the
-- running attempt of the worker that claimed the job); kept across attempts until
-- overwritten; deleted with their job (ON DELETE CASCADE: porter's connections set
-- foreign_keys = ON).
CREATE TABLE porter_job_outputs (
    job_id     INTEGER PRIMARY KEY REFERENCES porter_jobs (id) ON DELETE CASCADE,
    output     TEXT CHECK (output IS NULL OR json_valid(output)),
    progress   TEXT CHECK (progress IS NULL OR json_valid(progress)),
    updated_at TEXT NOT NULL
);
