-- 0026's porter_jobs_sequenced dropped again (found by review the same day). It held every job
-- that has a sequence key, finished ones included, and other statements could choose it: with
-- statistics taken before sequence keys were in use, the planner expected it to be empty, and
-- job_sequence_busy.sql (run at every insert of a job with a sequence key), job_retry.sql and the
-- rescues' lock lookups read all of it with a filter instead of using
-- porter_jobs_sequence_active or the primary key (10.3 ms against 0.39 ms, 15,600 sequenced
-- jobs). The completion's lock lookup read all of it too in that case (7 ms against 2.4 ms by
-- primary key). Its gain, 1.9-2.4 ms of a 770-job completion statement, did not make up for a
-- cost that grows with the sequenced jobs kept. The completion's lookup is by primary key again.
DROP INDEX IF EXISTS porter_jobs_sequenced;
