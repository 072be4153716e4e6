-- porter bench --sustain --hold only: a transaction left open elsewhere in the database. Its
-- snapshot holds vacuum back, so dead rows pile up while it lasts (the connection runs
-- BEGIN ISOLATION LEVEL REPEATABLE READ first).
SELECT count(*) FROM porter_jobs
