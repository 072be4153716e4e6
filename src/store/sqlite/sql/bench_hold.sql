-- porter bench --sustain --hold only: a long reader. Its snapshot stays open, so the WAL cannot
-- be checkpointed past it while it lasts (the connection runs BEGIN first).
SELECT count(*) FROM porter_jobs
