-- porter bench --sustain only: dead row versions in porter_jobs (the statistics collector's
-- figure, a moment behind).
SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'porter_jobs'::regclass
