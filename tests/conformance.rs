//! The conformance suite: every queue behaviour of the Store seam, written once and run on
//! SQLite (always) and on PostgreSQL (when PORTER_TEST_DATABASE_URL is set), each case on its
//! own fresh database.

mod common;

on_both_backends!(cases:
    insert_defaults, insert_scheduled_later, insert_many_keeps_order, insert_validation_writes_nothing,
    unique_key_dedups_unfinished_only, unique_key_within_one_batch, times_come_from_the_database_clock,
    an_injected_clock_moves_time_for_every_operation, a_long_lease_outlives_other_workers_clean_shutdowns,
    max_attempts_has_room_for_every_snooze_and_release,
    claim_orders_by_priority_due_time_id, claim_honours_limit_and_kinds, claim_skips_jobs_not_yet_due,
    claim_skips_paused_queue, claim_promotes_due_retryable_and_scheduled, concurrent_claimers_never_share_a_job,
    complete_is_fenced, fail_makes_retryable_with_backoff_and_history, fail_discards_when_attempts_used_up,
    fail_with_discard_flag, stale_fail_is_fenced, snooze_uses_no_attempt, release_uses_no_attempt, job_cancels_itself,
    user_cancel, user_retry, list_filters_and_keyset_paging, counts_by_queue_and_state,
    delete_finalized_keeps_young_and_unfinished, rescue_lost_worker_then_stale_completion_changes_nothing,
    rescue_discards_when_attempts_used_up, rescue_stuck_job,
    rescue_judges_a_worker_by_its_own_lease,
    stuck_limit_is_the_claiming_workers, queue_pause_resume_list, worker_registry,
    periodic_slot_yields_one_job, periodic_slot_races_yield_one_job, transactional_enqueue_commit_and_rollback,
    insert_wakes_subscribers, database_newer_than_binary_is_refused, journal_mode_is_wal_on_sqlite,
    cancel_of_running_job_is_a_request_that_keeps_its_unique_key, cancel_requested_job_ends_cancelled_unless_it_completes,
    rescue_of_cancel_requested_job_cancels_it, cancel_request_wakes_the_worker_running_the_job,
);

mod cases {
    use std::collections::HashSet;
    use std::sync::Arc;
    use std::time::Duration;

    use chrono::Utc;
    use porter::job::{InsertOpts, JobState};
    use porter::store::*;
    use porter::Error;

    use crate::common::TestDb;

    const W: &str = "worker-a";

    fn job(kind: &str) -> JobInsertParams {
        JobInsertParams::new(kind, serde_json::json!({"n": 1}), InsertOpts::default()).unwrap()
    }

    fn job_with(kind: &str, opts: InsertOpts) -> JobInsertParams {
        JobInsertParams::new(kind, serde_json::json!({}), opts).unwrap()
    }

    async fn insert(s: &dyn Store, p: JobInsertParams) -> porter::JobRow {
        s.job_insert_many(vec![p]).await.unwrap().remove(0).job
    }

    fn claim(queue: &str, kinds: &[&str], limit: u32, worker: &str) -> JobClaimParams {
        JobClaimParams {
            queue: queue.into(),
            kinds: kinds.iter().map(|k| k.to_string()).collect(),
            limit,
            worker_id: worker.into(),
        }
    }

    async fn claim_one(s: &dyn Store, kind: &str) -> porter::JobRow {
        let mut got = s.job_claim(claim("default", &[kind], 1, W)).await.unwrap();
        assert_eq!(got.len(), 1, "one job claimed");
        got.remove(0)
    }

    fn fail(row: &porter::JobRow, error: &str, retry_in: Duration) -> JobFailParams {
        JobFailParams {
            fence: row.fence(),
            error: error.into(),
            trace: None,
            retry_in,
            discard: false,
        }
    }

    async fn total(s: &dyn Store) -> i64 {
        s.job_counts().await.unwrap().total.values().sum()
    }

    pub async fn insert_defaults(db: TestDb) {
        let s = &*db.store;
        let r = s
            .job_insert_many(vec![job("noop")])
            .await
            .unwrap()
            .remove(0);
        assert!(r.inserted);
        let j = r.job;
        assert_eq!(
            (j.kind.as_str(), j.queue.as_str(), j.state),
            ("noop", "default", JobState::Available)
        );
        assert_eq!((j.priority, j.attempt, j.max_attempts), (1, 0, 25));
        assert_eq!(j.args, serde_json::json!({"n": 1}));
        assert!(j.errors.is_empty() && j.attempted_at.is_none() && j.finalized_at.is_none());
        assert_eq!(s.job_get(j.id).await.unwrap(), Some(j.clone()));
        assert_eq!(s.job_get(j.id + 1000).await.unwrap(), None);
    }

    pub async fn insert_scheduled_later(db: TestDb) {
        let s = &*db.store;
        let later = insert(
            s,
            job_with(
                "noop",
                InsertOpts {
                    schedule_in: Some(Duration::from_secs(3600)),
                    ..Default::default()
                },
            ),
        )
        .await;
        assert_eq!(later.state, JobState::Scheduled);
        assert!(later.scheduled_at > later.created_at + chrono::Duration::seconds(3500));
        let at = Utc::now() + chrono::Duration::days(1);
        let abs = insert(
            s,
            job_with(
                "noop",
                InsertOpts {
                    scheduled_at: Some(at),
                    ..Default::default()
                },
            ),
        )
        .await;
        assert_eq!(abs.state, JobState::Scheduled);
        assert!((abs.scheduled_at - at).num_milliseconds().abs() <= 1);
        let past = insert(
            s,
            job_with(
                "noop",
                InsertOpts {
                    scheduled_at: Some(Utc::now() - chrono::Duration::hours(1)),
                    ..Default::default()
                },
            ),
        )
        .await;
        assert_eq!(past.state, JobState::Available);
    }

    pub async fn insert_many_keeps_order(db: TestDb) {
        let s = &*db.store;
        let params: Vec<_> = (0..250)
            .map(|i| {
                JobInsertParams::new("noop", serde_json::json!({"i": i}), InsertOpts::default())
                    .unwrap()
            })
            .collect();
        let out = s.job_insert_many(params).await.unwrap();
        assert_eq!(out.len(), 250);
        for (i, r) in out.iter().enumerate() {
            assert!(r.inserted);
            assert_eq!(r.job.args["i"], i);
        }
        let ids: Vec<i64> = out.iter().map(|r| r.job.id).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids ascend in insert order"
        );
    }

    pub async fn insert_validation_writes_nothing(db: TestDb) {
        let s = &*db.store;
        let bad = [
            JobInsertParams::new("Bad Kind", serde_json::json!({}), InsertOpts::default()),
            JobInsertParams::new(
                "x';DROP TABLE porter_jobs;--",
                serde_json::json!({}),
                InsertOpts::default(),
            ),
            JobInsertParams::new(
                "noop",
                serde_json::json!({}),
                InsertOpts {
                    queue: Some("no spaces".into()),
                    ..Default::default()
                },
            ),
            JobInsertParams::new(
                "noop",
                serde_json::json!({}),
                InsertOpts {
                    queue: Some("q".repeat(65)),
                    ..Default::default()
                },
            ),
            JobInsertParams::new(
                "noop",
                serde_json::json!({}),
                InsertOpts {
                    priority: Some(5),
                    ..Default::default()
                },
            ),
            JobInsertParams::new(
                "noop",
                serde_json::json!({}),
                InsertOpts {
                    priority: Some(0),
                    ..Default::default()
                },
            ),
            JobInsertParams::new(
                "noop",
                serde_json::json!({}),
                InsertOpts {
                    max_attempts: Some(0),
                    ..Default::default()
                },
            ),
            JobInsertParams::new("", serde_json::json!({}), InsertOpts::default()),
        ];
        for b in bad {
            assert!(matches!(b, Err(Error::Invalid { .. })), "refused: {b:?}");
        }
        assert!("finished".parse::<JobState>().is_err());
        assert!(porter::store::open("mysql://x").await.is_err());
        assert_eq!(total(s).await, 0, "nothing written");
        // A kind that looks like SQL is only a string to the store, and the table survives.
        let odd = JobInsertParams::new(
            "noop",
            serde_json::json!({"q": "x';DROP TABLE porter_jobs;--"}),
            InsertOpts {
                unique_key: Some("x';DROP TABLE porter_jobs;--".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let row = insert(s, odd).await;
        assert_eq!(
            s.job_get(row.id).await.unwrap().unwrap().args["q"],
            "x';DROP TABLE porter_jobs;--"
        );
        assert_eq!(total(s).await, 1);
    }

    pub async fn unique_key_dedups_unfinished_only(db: TestDb) {
        let s = &*db.store;
        let keyed = || {
            job_with(
                "noop",
                InsertOpts {
                    unique_key: Some("report:7".into()),
                    ..Default::default()
                },
            )
        };
        let first = s.job_insert_many(vec![keyed()]).await.unwrap().remove(0);
        let second = s.job_insert_many(vec![keyed()]).await.unwrap().remove(0);
        assert!(first.inserted && !second.inserted);
        assert_eq!(first.job.id, second.job.id);
        assert_eq!(total(s).await, 1);
        let running = claim_one(s, "noop").await;
        assert!(
            !s.job_insert_many(vec![keyed()]).await.unwrap()[0].inserted,
            "running still holds the key"
        );
        assert_eq!(
            s.job_complete_many(vec![running.fence()]).await.unwrap(),
            vec![true]
        );
        let third = s.job_insert_many(vec![keyed()]).await.unwrap().remove(0);
        assert!(third.inserted, "a finished job frees its key");
        assert_ne!(third.job.id, first.job.id);
        assert_eq!(total(s).await, 2);
    }

    pub async fn unique_key_within_one_batch(db: TestDb) {
        let s = &*db.store;
        let keyed = |k: &str| {
            job_with(
                "noop",
                InsertOpts {
                    unique_key: Some(k.into()),
                    ..Default::default()
                },
            )
        };
        let out = s
            .job_insert_many(vec![keyed("a"), job("noop"), keyed("a"), keyed("b")])
            .await
            .unwrap();
        assert_eq!(
            out.iter().map(|r| r.inserted).collect::<Vec<_>>(),
            vec![true, true, false, true]
        );
        assert_eq!(out[0].job.id, out[2].job.id);
        assert_eq!(total(s).await, 3);
    }

    pub async fn times_come_from_the_database_clock(db: TestDb) {
        let s = &*db.store;
        let before = s.now().await.unwrap();
        let j = insert(s, job("noop")).await;
        let after = s.now().await.unwrap();
        assert!(
            j.created_at >= before - chrono::Duration::milliseconds(1)
                && j.created_at <= after + chrono::Duration::milliseconds(1)
        );
        assert_eq!(j.created_at, j.scheduled_at);
    }

    /// Due times, claims, leases, backoff and retention all read the injected clock: time is
    /// moved, never slept through.
    pub async fn an_injected_clock_moves_time_for_every_operation(db: TestDb) {
        let clock = porter::store::clock::Clock::new();
        let s = porter::store::open_with_clock(&db.url, clock.clone())
            .await
            .unwrap();
        let s = &*s;
        let real = s.now().await.unwrap();
        // A year ahead, to the millisecond (SQLite keeps milliseconds).
        let start = chrono::DateTime::from_timestamp_millis(real.timestamp_millis()).unwrap()
            + chrono::Duration::days(365);
        clock.set(start);
        assert_eq!(s.now().await.unwrap(), start);
        let hour = Duration::from_secs(3600);
        let j = insert(
            s,
            job_with(
                "noop",
                InsertOpts {
                    schedule_in: Some(hour),
                    ..Default::default()
                },
            ),
        )
        .await;
        assert_eq!((j.state, j.created_at), (JobState::Scheduled, start));
        assert_eq!(j.scheduled_at, start + chrono::Duration::hours(1));
        assert!(
            s.job_claim(claim("default", &["noop"], 10, W))
                .await
                .unwrap()
                .is_empty(),
            "not due yet"
        );

        let due = clock.advance(2 * hour);
        s.worker_heartbeat(W, "host", 1).await.unwrap();
        let got = s
            .job_claim(claim("default", &["noop"], 10, W))
            .await
            .unwrap();
        assert_eq!(got.len(), 1, "due once the clock passed its time");
        assert_eq!(got[0].attempted_at, Some(due));

        // The lease runs on the same clock: a worker silent for 16 s of it is lost.
        let rescue = |lease: u64| JobRescueParams {
            lease: Duration::from_secs(lease),
            stuck_after: Vec::new(),
            limit: 100,
        };
        assert_eq!(
            s.job_rescue(rescue(15)).await.unwrap(),
            RescueCounts::default()
        );
        let lost_at = clock.advance(Duration::from_secs(16));
        assert_eq!(s.job_rescue(rescue(15)).await.unwrap().retried, 1);
        let j = s.job_get(j.id).await.unwrap().unwrap();
        assert_eq!((j.state, j.scheduled_at), (JobState::Retryable, lost_at));
        assert_eq!(j.errors[0].at, lost_at);

        // Backoff: a failure 30 s out is due 30 s later on the clock, not before.
        let again = s
            .job_claim(claim("default", &["noop"], 10, W))
            .await
            .unwrap()
            .remove(0);
        let failed = s
            .job_fail(JobFailParams {
                fence: again.fence(),
                error: "boom".into(),
                trace: None,
                retry_in: Duration::from_secs(30),
                discard: false,
            })
            .await
            .unwrap();
        assert_eq!(failed.scheduled_at, lost_at + chrono::Duration::seconds(30));
        clock.advance(Duration::from_secs(29));
        assert!(s
            .job_claim(claim("default", &["noop"], 10, W))
            .await
            .unwrap()
            .is_empty());
        clock.advance(Duration::from_secs(1));
        let last = s
            .job_claim(claim("default", &["noop"], 10, W))
            .await
            .unwrap()
            .remove(0);
        assert_eq!(
            s.job_complete_many(vec![last.fence()]).await.unwrap(),
            vec![true]
        );

        // Retention: a day of the clock later, the completed job goes.
        let keep = JobDeleteFinalizedParams {
            completed: Duration::from_secs(86_400),
            cancelled: Duration::from_secs(86_400),
            discarded: Duration::from_secs(86_400),
            limit: 100,
        };
        assert_eq!(s.job_delete_finalized(keep.clone()).await.unwrap(), 0);
        clock.advance(Duration::from_secs(86_401));
        assert_eq!(s.job_delete_finalized(keep).await.unwrap(), 1);

        // Back to real time.
        clock.reset();
        let now = s.now().await.unwrap();
        assert!(
            (now - real).num_seconds().abs() < 600,
            "real time again: {now} vs {real}"
        );
    }

    /// A clean shutdown sweeps registrations silent for a day, but a worker whose own lease is
    /// longer heartbeats less often than that: it stays registered, so its jobs are not
    /// rescued (and run twice) while it runs them.
    pub async fn a_long_lease_outlives_other_workers_clean_shutdowns(db: TestDb) {
        let clock = porter::store::clock::Clock::new();
        let s = porter::store::open_with_clock(&db.url, clock.clone())
            .await
            .unwrap();
        let s = &*s;
        clock.set(s.now().await.unwrap());
        let day = Duration::from_secs(86_400);
        let register = |id: &str, lease: Duration| WorkerRegisterParams {
            id: id.into(),
            host: "h".into(),
            pid: 1,
            lease,
            stuck_after: Vec::new(),
        };
        s.worker_register(register("long", 4 * day)).await.unwrap();
        s.worker_register(register("short", Duration::from_secs(15)))
            .await
            .unwrap();
        insert(s, job("noop")).await;
        let running = s
            .job_claim(claim("default", &["noop"], 1, "long"))
            .await
            .unwrap();
        assert_eq!(running.len(), 1);
        clock.advance(day + Duration::from_secs(3600));
        s.worker_register(register("other", Duration::from_secs(15)))
            .await
            .unwrap();
        s.worker_delete("other").await.unwrap();
        let ids: Vec<String> = s
            .worker_list()
            .await
            .unwrap()
            .into_iter()
            .map(|w| w.id)
            .collect();
        assert_eq!(
            ids,
            vec!["long".to_string()],
            "the day-silent short-lease worker went, the long lease stayed"
        );
        let rescue = JobRescueParams {
            lease: Duration::from_secs(15),
            stuck_after: Vec::new(),
            limit: 10,
        };
        assert_eq!(
            s.job_rescue(rescue).await.unwrap(),
            RescueCounts::default(),
            "its job is not rescued"
        );
        assert_eq!(
            s.job_get(running[0].id).await.unwrap().unwrap().state,
            JobState::Running
        );
    }

    /// max_attempts is bounded so that snoozes and shutdown releases, which add one each, never
    /// overflow the 32-bit column (which made the release fail and the job use an attempt).
    pub async fn max_attempts_has_room_for_every_snooze_and_release(db: TestDb) {
        let s = &*db.store;
        let opts = |n| InsertOpts {
            max_attempts: Some(n),
            ..Default::default()
        };
        for n in [MAX_ATTEMPTS + 1, i32::MAX] {
            let refused = JobInsertParams::new("noop", serde_json::json!({}), opts(n));
            assert!(
                matches!(
                    refused,
                    Err(Error::Invalid {
                        what: "max_attempts",
                        ..
                    })
                ),
                "{n}: {refused:?}"
            );
        }
        insert(s, job_with("noop", opts(MAX_ATTEMPTS))).await;
        let j = claim_one(s, "noop").await;
        let released = s
            .job_release(j.fence(), "worker shut down".into())
            .await
            .unwrap();
        assert_eq!(released.max_attempts, MAX_ATTEMPTS + 1);
        let j = claim_one(s, "noop").await;
        let snoozed = s.job_snooze(j.fence(), Duration::ZERO).await.unwrap();
        assert_eq!(snoozed.max_attempts, MAX_ATTEMPTS + 2);
    }

    pub async fn claim_orders_by_priority_due_time_id(db: TestDb) {
        let s = &*db.store;
        let p = |priority: i16, ago_s: i64| {
            job_with(
                "noop",
                InsertOpts {
                    priority: Some(priority),
                    scheduled_at: Some(Utc::now() - chrono::Duration::seconds(ago_s)),
                    ..Default::default()
                },
            )
        };
        let rows = s
            .job_insert_many(vec![p(2, 100), p(1, 10), p(1, 50), p(4, 1000), p(1, 50)])
            .await
            .unwrap();
        let ids: Vec<i64> = rows.iter().map(|r| r.job.id).collect();
        let got = s
            .job_claim(claim("default", &["noop"], 10, W))
            .await
            .unwrap();
        let order: Vec<i64> = got.iter().map(|j| j.id).collect();
        assert_eq!(order, vec![ids[2], ids[4], ids[1], ids[0], ids[3]]);
        for j in &got {
            assert_eq!(
                (j.state, j.attempt, j.attempted_by.as_deref()),
                (JobState::Running, 1, Some(W))
            );
            assert!(j.attempted_at.is_some());
        }
    }

    pub async fn claim_honours_limit_and_kinds(db: TestDb) {
        let s = &*db.store;
        s.job_insert_many(
            (0..5)
                .map(|_| job("noop"))
                .chain((0..3).map(|_| job("other")))
                .collect(),
        )
        .await
        .unwrap();
        s.job_insert_many(vec![job_with(
            "noop",
            InsertOpts {
                queue: Some("critical".into()),
                ..Default::default()
            },
        )])
        .await
        .unwrap();
        assert_eq!(
            s.job_claim(claim("default", &["noop"], 2, W))
                .await
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            s.job_claim(claim("default", &["noop"], 10, W))
                .await
                .unwrap()
                .len(),
            3
        );
        assert!(
            s.job_claim(claim("default", &["noop"], 10, W))
                .await
                .unwrap()
                .is_empty(),
            "kinds it cannot run stay"
        );
        assert!(s
            .job_claim(claim("default", &[], 10, W))
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            s.job_claim(claim("default", &["other", "noop"], 10, W))
                .await
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            s.job_claim(claim("critical", &["noop"], 10, W))
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(s.job_counts().await.unwrap().total[&JobState::Running], 9);
    }

    pub async fn claim_skips_jobs_not_yet_due(db: TestDb) {
        let s = &*db.store;
        insert(
            s,
            job_with(
                "noop",
                InsertOpts {
                    schedule_in: Some(Duration::from_secs(60)),
                    ..Default::default()
                },
            ),
        )
        .await;
        assert!(s
            .job_claim(claim("default", &["noop"], 10, W))
            .await
            .unwrap()
            .is_empty());
        let soon = insert(
            s,
            job_with(
                "noop",
                InsertOpts {
                    schedule_in: Some(Duration::from_millis(300)),
                    ..Default::default()
                },
            ),
        )
        .await;
        assert_eq!(soon.state, JobState::Scheduled);
        crate::common::eventually("the scheduled job comes due and is claimed", || async {
            s.job_claim(claim("default", &["noop"], 10, W))
                .await
                .unwrap()
                .iter()
                .any(|j| j.id == soon.id)
        })
        .await;
        assert_eq!(
            s.job_counts().await.unwrap().total[&JobState::Scheduled],
            1,
            "the later one still waits"
        );
    }

    pub async fn claim_skips_paused_queue(db: TestDb) {
        let s = &*db.store;
        insert(s, job("noop")).await;
        s.queue_pause("default").await.unwrap();
        s.queue_pause("default").await.unwrap();
        assert!(s
            .job_claim(claim("default", &["noop"], 10, W))
            .await
            .unwrap()
            .is_empty());
        s.queue_resume("default").await.unwrap();
        assert_eq!(
            s.job_claim(claim("default", &["noop"], 10, W))
                .await
                .unwrap()
                .len(),
            1
        );
    }

    pub async fn claim_promotes_due_retryable_and_scheduled(db: TestDb) {
        let s = &*db.store;
        insert(s, job("noop")).await;
        let r = claim_one(s, "noop").await;
        let failed = s.job_fail(fail(&r, "boom", Duration::ZERO)).await.unwrap();
        assert_eq!(failed.state, JobState::Retryable);
        let again = claim_one(s, "noop").await;
        assert_eq!((again.id, again.attempt), (r.id, 2));
    }

    pub async fn concurrent_claimers_never_share_a_job(db: TestDb) {
        const JOBS: usize = 600;
        db.store
            .job_insert_many((0..JOBS).map(|_| job("noop")).collect())
            .await
            .unwrap();
        // Several stores (on SQLite: several writers, as several processes have) and several
        // tasks per store, all claiming small batches at once.
        let mut stores: Vec<Arc<dyn Store>> = vec![db.store.clone()];
        for _ in 0..2 {
            stores.push(db.reopen().await);
        }
        let mut tasks = Vec::new();
        for (si, store) in stores.iter().enumerate() {
            for t in 0..4 {
                let store = store.clone();
                let worker = format!("w{si}-{t}");
                tasks.push(tokio::spawn(async move {
                    let mut mine = Vec::new();
                    loop {
                        let got = store
                            .job_claim(claim("default", &["noop"], 7, &worker))
                            .await
                            .unwrap();
                        if got.is_empty() {
                            return mine;
                        }
                        mine.extend(got.into_iter().map(|j| j.id));
                    }
                }));
            }
        }
        let mut seen = HashSet::new();
        let mut n = 0;
        for t in tasks {
            for id in t.await.unwrap() {
                n += 1;
                assert!(seen.insert(id), "job {id} claimed twice");
            }
        }
        assert_eq!(n, JOBS);
        assert_eq!(
            db.store.job_counts().await.unwrap().total[&JobState::Running],
            JOBS as i64
        );
    }

    pub async fn complete_is_fenced(db: TestDb) {
        let s = &*db.store;
        insert(s, job("noop")).await;
        let r = claim_one(s, "noop").await;
        let wrong_attempt = JobFence {
            attempt: r.attempt + 1,
            ..r.fence()
        };
        let wrong_worker = JobFence {
            worker_id: "someone-else".into(),
            ..r.fence()
        };
        assert_eq!(
            s.job_complete_many(vec![wrong_attempt, wrong_worker])
                .await
                .unwrap(),
            vec![false, false]
        );
        assert_eq!(
            s.job_get(r.id).await.unwrap().unwrap().state,
            JobState::Running
        );
        assert_eq!(
            s.job_complete_many(vec![r.fence()]).await.unwrap(),
            vec![true]
        );
        let done = s.job_get(r.id).await.unwrap().unwrap();
        assert_eq!(done.state, JobState::Completed);
        assert!(done.finalized_at.is_some());
        assert_eq!(
            s.job_complete_many(vec![r.fence()]).await.unwrap(),
            vec![false],
            "twice changes nothing"
        );
    }

    pub async fn fail_makes_retryable_with_backoff_and_history(db: TestDb) {
        let s = &*db.store;
        insert(s, job("noop")).await;
        let r = claim_one(s, "noop").await;
        let now = s.now().await.unwrap();
        let mut p = fail(&r, "smtp timeout", Duration::from_secs(16));
        p.trace = Some("at mail.rs:10".into());
        let f = s.job_fail(p).await.unwrap();
        assert_eq!(f.state, JobState::Retryable);
        let delay = (f.scheduled_at - now).num_milliseconds();
        assert!(
            (15_000..=17_000).contains(&delay),
            "due in ~16 s, got {delay} ms"
        );
        assert!(f.finalized_at.is_none());
        assert_eq!(f.errors.len(), 1);
        assert_eq!(
            (f.errors[0].attempt, f.errors[0].error.as_str()),
            (1, "smtp timeout")
        );
        assert_eq!(f.errors[0].trace.as_deref(), Some("at mail.rs:10"));
        assert!(
            s.job_claim(claim("default", &["noop"], 10, W))
                .await
                .unwrap()
                .is_empty(),
            "not before its backoff"
        );
        // The default backoff: attempt^4 s, within ±10 %.
        for attempt in 1..=5 {
            let d = porter::job::default_backoff(attempt).as_secs_f64();
            let base = (attempt as f64).powi(4);
            assert!(d >= base * 0.9 - 1e-9 && d <= base * 1.1 + 1e-9);
        }
    }

    pub async fn fail_discards_when_attempts_used_up(db: TestDb) {
        let s = &*db.store;
        insert(
            s,
            job_with(
                "noop",
                InsertOpts {
                    max_attempts: Some(2),
                    ..Default::default()
                },
            ),
        )
        .await;
        let first = claim_one(s, "noop").await;
        s.job_fail(fail(&first, "one", Duration::ZERO))
            .await
            .unwrap();
        let second = claim_one(s, "noop").await;
        let d = s
            .job_fail(fail(&second, "two", Duration::ZERO))
            .await
            .unwrap();
        assert_eq!(d.state, JobState::Discarded);
        assert!(d.finalized_at.is_some());
        let errs: Vec<_> = d
            .errors
            .iter()
            .map(|e| (e.attempt, e.error.as_str()))
            .collect();
        assert_eq!(errs, vec![(1, "one"), (2, "two")]);
        assert!(s
            .job_claim(claim("default", &["noop"], 10, W))
            .await
            .unwrap()
            .is_empty());
    }

    pub async fn fail_with_discard_flag(db: TestDb) {
        let s = &*db.store;
        insert(s, job("noop")).await;
        let r = claim_one(s, "noop").await;
        let mut p = fail(&r, "args cannot be decoded", Duration::from_secs(1));
        p.discard = true;
        let d = s.job_fail(p).await.unwrap();
        assert_eq!((d.state, d.attempt), (JobState::Discarded, 1));
    }

    pub async fn stale_fail_is_fenced(db: TestDb) {
        let s = &*db.store;
        insert(s, job("noop")).await;
        let r = claim_one(s, "noop").await;
        let mut stale = fail(&r, "late", Duration::ZERO);
        stale.fence.attempt += 1;
        assert!(matches!(s.job_fail(stale).await, Err(Error::Fenced { .. })));
        assert!(matches!(
            s.job_snooze(
                JobFence {
                    worker_id: "x".into(),
                    ..r.fence()
                },
                Duration::ZERO
            )
            .await,
            Err(Error::Fenced { .. })
        ));
        assert!(matches!(
            s.job_cancel_running(
                JobFence {
                    worker_id: "x".into(),
                    ..r.fence()
                },
                "no".into()
            )
            .await,
            Err(Error::Fenced { .. })
        ));
        let row = s.job_get(r.id).await.unwrap().unwrap();
        assert_eq!(
            (row.state, row.errors.len()),
            (JobState::Running, 0),
            "nothing changed"
        );
    }

    /// A job its worker gives back (stopped by a shutdown, or found by its reconcile) is run
    /// again at once without that attempt counting toward max_attempts (issue 11.1); the
    /// reason joins its history, and the write is fenced.
    pub async fn release_uses_no_attempt(db: TestDb) {
        let s = &*db.store;
        insert(
            s,
            job_with(
                "noop",
                InsertOpts {
                    max_attempts: Some(1),
                    ..Default::default()
                },
            ),
        )
        .await;
        let r = claim_one(s, "noop").await;
        let back = s
            .job_release(r.fence(), "worker shut down".into())
            .await
            .unwrap();
        assert_eq!(
            (back.state, back.attempt, back.max_attempts),
            (JobState::Available, 1, 2)
        );
        assert!(back.finalized_at.is_none());
        assert_eq!(back.errors.len(), 1);
        assert_eq!(
            (back.errors[0].attempt, back.errors[0].error.as_str()),
            (1, "worker shut down")
        );
        // Fenced: a second release of the same attempt, or one by another worker, changes nothing.
        assert!(matches!(
            s.job_release(r.fence(), "again".into()).await,
            Err(Error::Fenced { .. })
        ));
        let again = claim_one(s, "noop").await;
        assert_eq!((again.id, again.attempt), (r.id, 2));
        let other = JobFence {
            worker_id: "someone-else".into(),
            ..again.fence()
        };
        assert!(matches!(
            s.job_release(other, "x".into()).await,
            Err(Error::Fenced { .. })
        ));
        // The attempt left is a real one: a failure now uses it up.
        let d = s
            .job_fail(fail(&again, "boom", Duration::ZERO))
            .await
            .unwrap();
        assert_eq!((d.state, d.errors.len()), (JobState::Discarded, 2));
    }

    pub async fn snooze_uses_no_attempt(db: TestDb) {
        let s = &*db.store;
        insert(
            s,
            job_with(
                "noop",
                InsertOpts {
                    max_attempts: Some(1),
                    ..Default::default()
                },
            ),
        )
        .await;
        let r = claim_one(s, "noop").await;
        let z = s
            .job_snooze(r.fence(), Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(
            (z.state, z.max_attempts, z.errors.len()),
            (JobState::Scheduled, 2, 0)
        );
        assert!(s
            .job_claim(claim("default", &["noop"], 1, W))
            .await
            .unwrap()
            .is_empty());
        insert(s, job("other")).await;
        let r2 = s
            .job_claim(claim("default", &["other"], 1, W))
            .await
            .unwrap()
            .remove(0);
        let z2 = s.job_snooze(r2.fence(), Duration::ZERO).await.unwrap();
        assert_eq!(z2.state, JobState::Scheduled);
        let again = s
            .job_claim(claim("default", &["other"], 1, W))
            .await
            .unwrap()
            .remove(0);
        assert_eq!((again.id, again.attempt), (r2.id, 2));
        // Attempts left are what they were: one failure on a 1-attempt job discards it.
        let f = s
            .job_fail(fail(
                &s.job_get(r.id).await.unwrap().unwrap(),
                "x",
                Duration::ZERO,
            ))
            .await;
        assert!(f.is_err(), "not running, so fenced");
    }

    pub async fn job_cancels_itself(db: TestDb) {
        let s = &*db.store;
        insert(s, job("noop")).await;
        let r = claim_one(s, "noop").await;
        let c = s
            .job_cancel_running(r.fence(), "customer closed the account".into())
            .await
            .unwrap();
        assert_eq!(c.state, JobState::Cancelled);
        assert!(c.finalized_at.is_some());
        assert_eq!(
            c.errors.last().unwrap().error,
            "customer closed the account"
        );
    }

    pub async fn user_cancel(db: TestDb) {
        let s = &*db.store;
        let a = insert(s, job("noop")).await;
        assert_eq!(s.job_cancel(a.id).await.unwrap().state, JobState::Cancelled);
        assert!(
            matches!(s.job_cancel(a.id).await, Err(Error::Conflict(_))),
            "already final"
        );
        assert!(matches!(
            s.job_cancel(999_999).await,
            Err(Error::NotFound { .. })
        ));
        let later = InsertOpts {
            schedule_in: Some(Duration::from_secs(3600)),
            ..Default::default()
        };
        let scheduled = insert(s, job_with("noop", later)).await;
        insert(s, job("noop")).await;
        let r = claim_one(s, "noop").await;
        let retryable = s
            .job_fail(fail(&r, "x", Duration::from_secs(3600)))
            .await
            .unwrap();
        assert_eq!(retryable.state, JobState::Retryable);
        for j in [scheduled, retryable] {
            let c = s.job_cancel(j.id).await.unwrap();
            assert_eq!(
                c.state,
                JobState::Cancelled,
                "a job that is not running is cancelled at once"
            );
            assert!(c.finalized_at.is_some());
        }
        // A running job: see cancel_of_running_job_is_a_request_that_keeps_its_unique_key.
    }

    pub async fn user_retry(db: TestDb) {
        let s = &*db.store;
        insert(
            s,
            job_with(
                "noop",
                InsertOpts {
                    max_attempts: Some(1),
                    ..Default::default()
                },
            ),
        )
        .await;
        let r = claim_one(s, "noop").await;
        assert!(
            matches!(s.job_retry(r.id).await, Err(Error::Conflict(_))),
            "running"
        );
        let d = s.job_fail(fail(&r, "bad", Duration::ZERO)).await.unwrap();
        assert_eq!(d.state, JobState::Discarded);
        let back = s.job_retry(r.id).await.unwrap();
        assert_eq!((back.state, back.errors.len()), (JobState::Available, 1));
        assert!(back.finalized_at.is_none());
        assert!(back.max_attempts > back.attempt, "one more attempt allowed");
        let again = claim_one(s, "noop").await;
        assert_eq!((again.id, again.attempt), (r.id, 2));
        assert!(matches!(
            s.job_retry(424_242).await,
            Err(Error::NotFound { .. })
        ));
        // Retrying a finished keyed job while another unfinished job holds the key is a conflict.
        let keyed = || {
            job_with(
                "other",
                InsertOpts {
                    unique_key: Some("k".into()),
                    ..Default::default()
                },
            )
        };
        let k1 = insert(s, keyed()).await;
        s.job_cancel(k1.id).await.unwrap();
        insert(s, keyed()).await;
        assert!(matches!(s.job_retry(k1.id).await, Err(Error::Conflict(_))));
    }

    pub async fn list_filters_and_keyset_paging(db: TestDb) {
        let s = &*db.store;
        s.job_insert_many((0..7).map(|_| job("noop")).collect())
            .await
            .unwrap();
        s.job_insert_many(
            (0..3)
                .map(|_| {
                    job_with(
                        "other",
                        InsertOpts {
                            queue: Some("mail".into()),
                            ..Default::default()
                        },
                    )
                })
                .collect(),
        )
        .await
        .unwrap();
        let first = s
            .job_claim(claim("default", &["noop"], 2, W))
            .await
            .unwrap();
        let all = s.job_list(JobListParams::default()).await.unwrap();
        assert_eq!(all.len(), 10);
        assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        let page1 = s
            .job_list(JobListParams {
                limit: Some(4),
                ..Default::default()
            })
            .await
            .unwrap();
        let page2 = s
            .job_list(JobListParams {
                limit: Some(4),
                before_id: Some(page1[3].id),
                ..Default::default()
            })
            .await
            .unwrap();
        let page3 = s
            .job_list(JobListParams {
                limit: Some(4),
                before_id: Some(page2[3].id),
                ..Default::default()
            })
            .await
            .unwrap();
        let paged: Vec<i64> = page1
            .iter()
            .chain(&page2)
            .chain(&page3)
            .map(|j| j.id)
            .collect();
        assert_eq!(paged, all.iter().map(|j| j.id).collect::<Vec<_>>());
        let running = s
            .job_list(JobListParams {
                states: vec![JobState::Running],
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            running.iter().map(|j| j.id).collect::<HashSet<_>>(),
            first.iter().map(|j| j.id).collect()
        );
        let two_states = s
            .job_list(JobListParams {
                states: vec![JobState::Running, JobState::Available],
                kind: Some("noop".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(two_states.len(), 7);
        let mail = s
            .job_list(JobListParams {
                queue: Some("mail".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(mail.len(), 3);
        assert!(mail.iter().all(|j| j.kind == "other"));
        assert!(s
            .job_list(JobListParams {
                kind: Some("nope".into()),
                ..Default::default()
            })
            .await
            .unwrap()
            .is_empty());
    }

    pub async fn counts_by_queue_and_state(db: TestDb) {
        let s = &*db.store;
        s.job_insert_many((0..4).map(|_| job("noop")).collect())
            .await
            .unwrap();
        s.job_insert_many(vec![job_with(
            "noop",
            InsertOpts {
                queue: Some("mail".into()),
                schedule_in: Some(Duration::from_secs(600)),
                ..Default::default()
            },
        )])
        .await
        .unwrap();
        let r = claim_one(s, "noop").await;
        s.job_complete_many(vec![r.fence()]).await.unwrap();
        claim_one(s, "noop").await;
        let c = s.job_counts().await.unwrap();
        assert_eq!(c.total.len(), 7, "every state present");
        assert_eq!(
            (
                c.total[&JobState::Available],
                c.total[&JobState::Running],
                c.total[&JobState::Completed],
                c.total[&JobState::Scheduled]
            ),
            (2, 1, 1, 1)
        );
        assert_eq!(c.queues["default"][&JobState::Available], 2);
        assert_eq!(c.queues["mail"][&JobState::Scheduled], 1);
        assert_eq!(c.queues["mail"][&JobState::Discarded], 0);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["total"]["completed"], 1);
        assert_eq!(json["queues"]["mail"]["scheduled"], 1);
    }

    pub async fn delete_finalized_keeps_young_and_unfinished(db: TestDb) {
        let s = &*db.store;
        s.job_insert_many((0..6).map(|_| job("noop")).collect())
            .await
            .unwrap();
        let old = s
            .job_claim(claim("default", &["noop"], 3, W))
            .await
            .unwrap();
        s.job_complete_many(vec![old[0].fence()]).await.unwrap();
        s.job_cancel_running(old[1].fence(), "x".into())
            .await
            .unwrap();
        s.job_fail(JobFailParams {
            discard: true,
            ..fail(&old[2], "x", Duration::ZERO)
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let young = claim_one(s, "noop").await;
        s.job_complete_many(vec![young.fence()]).await.unwrap();
        let p = |completed: u64, discarded: u64, limit: u32| JobDeleteFinalizedParams {
            completed: Duration::from_millis(completed),
            cancelled: Duration::from_millis(completed),
            discarded: Duration::from_millis(discarded),
            limit,
        };
        // Discarded kept for an hour: only the old completed and cancelled go.
        assert_eq!(
            s.job_delete_finalized(p(1000, 3_600_000, 1000))
                .await
                .unwrap(),
            2
        );
        assert!(
            s.job_get(old[0].id).await.unwrap().is_none()
                && s.job_get(old[1].id).await.unwrap().is_none()
        );
        assert!(s.job_get(old[2].id).await.unwrap().is_some());
        assert!(s.job_get(young.id).await.unwrap().is_some(), "too young");
        // Bounded batches.
        assert_eq!(s.job_delete_finalized(p(0, 0, 1)).await.unwrap(), 1);
        assert_eq!(s.job_delete_finalized(p(0, 0, 100)).await.unwrap(), 1);
        assert_eq!(s.job_delete_finalized(p(0, 0, 100)).await.unwrap(), 0);
        let c = s.job_counts().await.unwrap().total;
        assert_eq!(
            (c[&JobState::Available], c[&JobState::Running]),
            (2, 0),
            "unfinished untouched"
        );
    }

    pub async fn rescue_lost_worker_then_stale_completion_changes_nothing(db: TestDb) {
        let s = &*db.store;
        s.worker_heartbeat("alive", "host", 1).await.unwrap();
        s.job_insert_many(vec![job("noop"), job("noop")])
            .await
            .unwrap();
        let live = s
            .job_claim(claim("default", &["noop"], 1, "alive"))
            .await
            .unwrap()
            .remove(0);
        let lost = s
            .job_claim(claim("default", &["noop"], 1, "gone"))
            .await
            .unwrap()
            .remove(0);
        let params = JobRescueParams {
            lease: Duration::from_secs(60),
            stuck_after: vec![],
            limit: 100,
        };
        let c = s.job_rescue(params.clone()).await.unwrap();
        assert_eq!(
            c,
            RescueCounts {
                retried: 1,
                discarded: 0,
                cancelled: 0
            }
        );
        let r = s.job_get(lost.id).await.unwrap().unwrap();
        assert_eq!(r.state, JobState::Retryable);
        assert_eq!(r.errors.last().unwrap().error, "worker lost");
        assert_eq!(
            s.job_get(live.id).await.unwrap().unwrap().state,
            JobState::Running
        );
        // The lost worker comes back and completes: fenced, nothing changes.
        assert_eq!(
            s.job_complete_many(vec![lost.fence()]).await.unwrap(),
            vec![false]
        );
        assert_eq!(
            s.job_get(lost.id).await.unwrap().unwrap().state,
            JobState::Retryable
        );
        // Another worker takes it over.
        let taken = s
            .job_claim(claim("default", &["noop"], 1, "other"))
            .await
            .unwrap()
            .remove(0);
        assert_eq!((taken.id, taken.attempt), (lost.id, 2));
        assert_eq!(
            s.job_rescue(params).await.unwrap(),
            RescueCounts {
                retried: 1,
                discarded: 0,
                cancelled: 0
            },
            "'other' never registered"
        );
        // A worker whose heartbeat is older than the lease is lost too.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let short = JobRescueParams {
            lease: Duration::from_secs(1),
            stuck_after: vec![],
            limit: 100,
        };
        assert_eq!(
            s.job_rescue(short).await.unwrap().retried,
            1,
            "alive's heartbeat went stale"
        );
    }

    /// A lost worker does not use up its job's attempt for the first two losses (a kill is
    /// no failure of the job's), but from the third on it counts: a job that kills its worker
    /// every time still ends discarded.
    pub async fn rescue_discards_when_attempts_used_up(db: TestDb) {
        let s = &*db.store;
        let opts = InsertOpts {
            max_attempts: Some(1),
            ..Default::default()
        };
        let id = insert(s, job_with("noop", opts)).await.id;
        let rescue = || JobRescueParams {
            lease: Duration::from_secs(60),
            stuck_after: vec![],
            limit: 100,
        };
        let retried = RescueCounts {
            retried: 1,
            discarded: 0,
            cancelled: 0,
        };
        for (loss, max_attempts) in [(1, 2), (2, 3)] {
            s.job_claim(claim("default", &["noop"], 1, "gone"))
                .await
                .unwrap()
                .remove(0);
            assert_eq!(
                s.job_rescue(rescue()).await.unwrap(),
                retried,
                "loss {loss} is forgiven"
            );
            let j = s.job_get(id).await.unwrap().unwrap();
            assert_eq!(
                (j.state, j.attempt, j.max_attempts),
                (JobState::Retryable, loss, max_attempts)
            );
        }
        s.job_claim(claim("default", &["noop"], 1, "gone"))
            .await
            .unwrap()
            .remove(0);
        let c = s.job_rescue(rescue()).await.unwrap();
        assert_eq!(
            c,
            RescueCounts {
                retried: 0,
                discarded: 1,
                cancelled: 0
            },
            "the third loss counts"
        );
        let d = s.job_get(id).await.unwrap().unwrap();
        assert_eq!(
            (d.state, d.attempt, d.max_attempts),
            (JobState::Discarded, 3, 3)
        );
        assert!(d.finalized_at.is_some());
        let lost = d.errors.iter().filter(|e| e.error == "worker lost").count();
        assert_eq!(lost, 3);
    }

    fn register(
        id: &str,
        lease: Duration,
        stuck_after: &[(&str, Duration)],
    ) -> WorkerRegisterParams {
        WorkerRegisterParams {
            id: id.into(),
            host: "host".into(),
            pid: 1,
            lease,
            stuck_after: stuck_after
                .iter()
                .map(|(k, d)| (k.to_string(), *d))
                .collect(),
        }
    }

    /// Issue 11.2: a worker is judged by the lease it registered, not by the rescuer's. A
    /// rescuer with a short lease leaves alone a worker with a long one whose heartbeat is
    /// older than the rescuer's lease, and a rescuer with a long lease rescues a worker whose
    /// own short lease ran out. A registration without a lease (a binary from before the
    /// migration) is judged by the rescuer's lease, as before.
    pub async fn rescue_judges_a_worker_by_its_own_lease(db: TestDb) {
        let s = &*db.store;
        let hour = Duration::from_secs(3600);
        s.worker_register(register("long-lease", hour, &[]))
            .await
            .unwrap();
        s.worker_register(register("short-lease", Duration::from_millis(1), &[]))
            .await
            .unwrap();
        s.worker_heartbeat("no-lease", "host", 1).await.unwrap();
        s.job_insert_many(vec![job("noop"), job("noop"), job("noop")])
            .await
            .unwrap();
        let long = s
            .job_claim(claim("default", &["noop"], 1, "long-lease"))
            .await
            .unwrap()
            .remove(0);
        let short = s
            .job_claim(claim("default", &["noop"], 1, "short-lease"))
            .await
            .unwrap()
            .remove(0);
        let none = s
            .job_claim(claim("default", &["noop"], 1, "no-lease"))
            .await
            .unwrap()
            .remove(0);
        // Every heartbeat is now older than a millisecond (SQLite keeps milliseconds).
        tokio::time::sleep(Duration::from_millis(20)).await;
        // A rescuer with a long lease: only the worker whose own lease ran out is lost.
        let long_rescuer = JobRescueParams {
            lease: hour,
            stuck_after: vec![],
            limit: 100,
        };
        assert_eq!(
            s.job_rescue(long_rescuer).await.unwrap(),
            RescueCounts {
                retried: 1,
                discarded: 0,
                ..Default::default()
            }
        );
        assert_eq!(
            s.job_get(short.id).await.unwrap().unwrap().state,
            JobState::Retryable
        );
        // A rescuer with a lease shorter than the heartbeats' age: the worker with the long
        // lease keeps its job; the one without a lease of its own is judged by the rescuer's.
        let short_rescuer = JobRescueParams {
            lease: Duration::from_millis(1),
            stuck_after: vec![],
            limit: 100,
        };
        assert_eq!(
            s.job_rescue(short_rescuer).await.unwrap(),
            RescueCounts {
                retried: 1,
                discarded: 0,
                ..Default::default()
            }
        );
        assert_eq!(
            s.job_get(none.id).await.unwrap().unwrap().state,
            JobState::Retryable
        );
        assert_eq!(
            s.job_get(long.id).await.unwrap().unwrap().state,
            JobState::Running,
            "judged by its own lease"
        );
        // Re-registering keeps the lease (a heartbeat refreshes it).
        s.worker_register(register("long-lease", hour, &[]))
            .await
            .unwrap();
        let again = JobRescueParams {
            lease: Duration::ZERO,
            stuck_after: vec![],
            limit: 100,
        };
        assert_eq!(s.job_rescue(again).await.unwrap(), RescueCounts::default());
    }

    /// Issue 11.2: a job's stuck limit is the one of the worker that claimed it (its kind's
    /// timeout plus margin there), not the rescuing process's. Jobs of a worker that recorded
    /// no limit (a binary from before the migration) use the rescuer's, as before.
    pub async fn stuck_limit_is_the_claiming_workers(db: TestDb) {
        let s = &*db.store;
        let hour = Duration::from_secs(3600);
        s.worker_register(register("patient", hour, &[("noop", hour)]))
            .await
            .unwrap();
        s.worker_register(register(
            "hasty",
            hour,
            &[("noop", Duration::from_millis(1))],
        ))
        .await
        .unwrap();
        s.worker_heartbeat("old-binary", "host", 1).await.unwrap();
        s.job_insert_many(vec![job("noop"), job("noop"), job("noop")])
            .await
            .unwrap();
        let patient = s
            .job_claim(claim("default", &["noop"], 1, "patient"))
            .await
            .unwrap()
            .remove(0);
        let hasty = s
            .job_claim(claim("default", &["noop"], 1, "hasty"))
            .await
            .unwrap()
            .remove(0);
        let old = s
            .job_claim(claim("default", &["noop"], 1, "old-binary"))
            .await
            .unwrap()
            .remove(0);
        tokio::time::sleep(Duration::from_millis(20)).await;
        // A rescuer that would wait an hour: the hasty worker's own limit has passed.
        let p = JobRescueParams {
            lease: hour,
            stuck_after: vec![("noop".into(), hour)],
            limit: 100,
        };
        assert_eq!(
            s.job_rescue(p).await.unwrap(),
            RescueCounts {
                retried: 1,
                discarded: 0,
                ..Default::default()
            }
        );
        let h = s.job_get(hasty.id).await.unwrap().unwrap();
        assert_eq!(
            (h.state, h.errors[0].error.as_str()),
            (JobState::Retryable, "job ran past its timeout")
        );
        // A rescuer that would not wait at all: the patient worker's job is within its limit;
        // the old binary's job has no limit recorded, so the rescuer's applies.
        let p = JobRescueParams {
            lease: hour,
            stuck_after: vec![("noop".into(), Duration::ZERO)],
            limit: 100,
        };
        assert_eq!(
            s.job_rescue(p).await.unwrap(),
            RescueCounts {
                retried: 1,
                discarded: 0,
                ..Default::default()
            }
        );
        assert_eq!(
            s.job_get(old.id).await.unwrap().unwrap().state,
            JobState::Retryable
        );
        assert_eq!(
            s.job_get(patient.id).await.unwrap().unwrap().state,
            JobState::Running
        );
    }

    pub async fn rescue_stuck_job(db: TestDb) {
        let s = &*db.store;
        s.worker_heartbeat(W, "host", 1).await.unwrap();
        s.job_insert_many(vec![job("noop"), job("other")])
            .await
            .unwrap();
        let rows = s
            .job_claim(claim("default", &["noop", "other"], 2, W))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let p = JobRescueParams {
            lease: Duration::from_secs(60),
            stuck_after: vec![
                ("noop".into(), Duration::ZERO),
                ("other".into(), Duration::from_secs(3600)),
            ],
            limit: 100,
        };
        assert_eq!(
            s.job_rescue(p).await.unwrap(),
            RescueCounts {
                retried: 1,
                discarded: 0,
                cancelled: 0
            }
        );
        for r in rows {
            let now = s.job_get(r.id).await.unwrap().unwrap();
            if r.kind == "noop" {
                assert_eq!(now.state, JobState::Retryable);
                assert_eq!(now.errors[0].error, "job ran past its timeout");
            } else {
                assert_eq!(now.state, JobState::Running);
            }
        }
    }

    pub async fn queue_pause_resume_list(db: TestDb) {
        let s = &*db.store;
        insert(
            s,
            job_with(
                "noop",
                InsertOpts {
                    queue: Some("mail".into()),
                    ..Default::default()
                },
            ),
        )
        .await;
        s.queue_pause("reports").await.unwrap();
        let qs = s.queue_list().await.unwrap();
        assert_eq!(
            qs.iter()
                .map(|q| (q.name.as_str(), q.paused_at.is_some()))
                .collect::<Vec<_>>(),
            vec![("mail", false), ("reports", true)]
        );
        s.queue_resume("reports").await.unwrap();
        assert!(s
            .queue_list()
            .await
            .unwrap()
            .iter()
            .all(|q| q.paused_at.is_none()));
        assert!(matches!(
            s.queue_pause("Bad Queue").await,
            Err(Error::Invalid { .. })
        ));
        assert!(matches!(
            s.queue_resume("x';--").await,
            Err(Error::Invalid { .. })
        ));
        assert_eq!(s.queue_list().await.unwrap().len(), 2);
    }

    pub async fn worker_registry(db: TestDb) {
        let s = &*db.store;
        s.worker_heartbeat("w1", "host-a", 10).await.unwrap();
        s.worker_heartbeat("w2", "host-b", 20).await.unwrap();
        let first = s.worker_list().await.unwrap();
        assert_eq!(first.len(), 2);
        tokio::time::sleep(Duration::from_millis(20)).await;
        s.worker_heartbeat("w1", "host-a", 10).await.unwrap();
        let w1 = s
            .worker_list()
            .await
            .unwrap()
            .into_iter()
            .find(|w| w.id == "w1")
            .unwrap();
        assert!(w1.heartbeat_at > first.iter().find(|w| w.id == "w1").unwrap().heartbeat_at);
        assert_eq!((w1.host.as_str(), w1.pid), ("host-a", 10));
        s.worker_delete("w1").await.unwrap();
        assert_eq!(
            s.worker_list()
                .await
                .unwrap()
                .iter()
                .map(|w| w.id.as_str())
                .collect::<Vec<_>>(),
            vec!["w2"]
        );
    }

    fn periodic(slot: i64, insert_if_new: bool) -> PeriodicEnqueueParams {
        PeriodicEnqueueParams {
            name: "report".into(),
            slot,
            insert_if_new,
            job: job_with(
                "noop",
                InsertOpts {
                    metadata: Some(serde_json::json!({"slot": slot})),
                    ..Default::default()
                },
            ),
        }
    }

    pub async fn periodic_slot_yields_one_job(db: TestDb) {
        let s = &*db.store;
        assert!(
            s.periodic_enqueue(periodic(1000, false))
                .await
                .unwrap()
                .is_none(),
            "first sight only records"
        );
        assert!(
            s.periodic_enqueue(periodic(1000, true))
                .await
                .unwrap()
                .is_none(),
            "same slot"
        );
        let j = s
            .periodic_enqueue(periodic(2000, false))
            .await
            .unwrap()
            .expect("next slot inserts");
        assert_eq!(j.job.metadata["slot"], 2000);
        assert!(s
            .periodic_enqueue(periodic(2000, false))
            .await
            .unwrap()
            .is_none());
        assert!(
            s.periodic_enqueue(periodic(1500, false))
                .await
                .unwrap()
                .is_none(),
            "never backwards"
        );
        let k = s.periodic_enqueue(periodic(9000, false)).await.unwrap();
        assert!(k.is_some(), "a gap of many slots yields one job");
        assert_eq!(total(s).await, 2);
        let fresh = PeriodicEnqueueParams {
            name: "other".into(),
            ..periodic(5, true)
        };
        assert!(
            s.periodic_enqueue(fresh).await.unwrap().is_some(),
            "insert_if_new"
        );
    }

    pub async fn periodic_slot_races_yield_one_job(db: TestDb) {
        let mut stores: Vec<Arc<dyn Store>> = vec![db.store.clone()];
        for _ in 0..2 {
            stores.push(db.reopen().await);
        }
        db.store.periodic_enqueue(periodic(0, false)).await.unwrap();
        for slot in 1..=5 {
            let mut tasks = Vec::new();
            for s in &stores {
                for _ in 0..3 {
                    let s = s.clone();
                    tasks.push(tokio::spawn(async move {
                        s.periodic_enqueue(periodic(slot, false))
                            .await
                            .unwrap()
                            .is_some()
                    }));
                }
            }
            let mut won = 0;
            for t in tasks {
                won += t.await.unwrap() as usize;
            }
            assert_eq!(won, 1, "slot {slot}: exactly one winner");
        }
        assert_eq!(total(&*db.store).await, 5);
    }

    /// Runs raw SQL on the test database through the driver, outside porter.
    async fn raw_exec(db: &TestDb, sql: &str) {
        match db.sqlite_path() {
            Some(path) => {
                let c = rusqlite::Connection::open(path).unwrap();
                c.busy_timeout(Duration::from_secs(5)).unwrap();
                c.execute_batch(sql).unwrap();
            }
            None => {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
            }
        }
    }

    pub async fn transactional_enqueue_commit_and_rollback(db: TestDb) {
        let s = &*db.store;
        let p = |n: i64| {
            JobInsertParams::new("noop", serde_json::json!({"n": n}), InsertOpts::default())
                .unwrap()
        };
        match db.sqlite_path() {
            Some(path) => {
                let mut c = rusqlite::Connection::open(path).unwrap();
                c.busy_timeout(Duration::from_secs(5)).unwrap();
                let tx = c
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .unwrap();
                let r = sqlite::job_insert_tx(&tx, &[p(1)]).unwrap();
                tx.rollback().unwrap();
                assert!(
                    s.job_get(r[0].job.id).await.unwrap().is_none(),
                    "rolled back: no job"
                );
                let tx = c
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .unwrap();
                let r = sqlite::job_insert_tx(&tx, &[p(2), p(3)]).unwrap();
                tx.commit().unwrap();
                assert_eq!(s.job_get(r[1].job.id).await.unwrap().unwrap().args["n"], 3);
            }
            None => {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
                let mut tx = c.begin().await.unwrap();
                let r = postgres::job_insert_tx(&mut tx, vec![p(1)]).await.unwrap();
                tx.rollback().await.unwrap();
                assert!(
                    s.job_get(r[0].job.id).await.unwrap().is_none(),
                    "rolled back: no job"
                );
                let mut tx = c.begin().await.unwrap();
                let r = postgres::job_insert_tx(&mut tx, vec![p(2), p(3)])
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                assert_eq!(s.job_get(r[1].job.id).await.unwrap().unwrap().args["n"], 3);
            }
        }
        assert_eq!(total(s).await, 2);
        // A rolled-back keyed insert leaves no phantom: the next insert of the key is new.
        let keyed = JobInsertParams::new(
            "noop",
            serde_json::json!({}),
            InsertOpts {
                unique_key: Some("u".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let r = s.job_insert_many(vec![keyed]).await.unwrap().remove(0);
        assert!(r.inserted);
        assert!(s.job_get(r.job.id).await.unwrap().is_some());
    }

    pub async fn insert_wakes_subscribers(db: TestDb) {
        let sub = db.store.wakeup().subscribe("default");
        let other = db.reopen().await;
        other.job_insert_many(vec![job("noop")]).await.unwrap();
        // Woken through the database (LISTEN/NOTIFY or data_version), not in-process.
        tokio::time::timeout(Duration::from_secs(30), sub.notified())
            .await
            .expect("woken by another store's insert");
        db.store.job_insert_many(vec![job("noop")]).await.unwrap();
        tokio::time::timeout(Duration::from_secs(30), sub.notified())
            .await
            .expect("woken by an insert in this process");
    }

    pub async fn database_newer_than_binary_is_refused(db: TestDb) {
        let sql = match db.store.backend() {
            // porter's own bookkeeping, on both backends (see tests/migrations.rs).
            Backend::Sqlite => "INSERT INTO porter_migrations (set_name, version, name, applied_at) VALUES ('porter', 99, 'from the future', 'x')",
            Backend::Postgres => "INSERT INTO porter_migrations (set_name, version, name, applied_at) VALUES ('porter', 99, 'from the future', now())",
        };
        raw_exec(&db, sql).await;
        match porter::store::open(&db.url).await {
            Err(Error::DatabaseTooNew { found, known }) => assert!(found == 99 && known < 99),
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a newer database must be refused"),
        }
    }

    pub async fn journal_mode_is_wal_on_sqlite(db: TestDb) {
        let mode = db.store.journal_mode().await.unwrap();
        match db.store.backend() {
            Backend::Sqlite => assert_eq!(mode.as_deref(), Some("wal")),
            Backend::Postgres => assert_eq!(mode, None),
        }
    }

    fn cancel_requested_at(row: &porter::JobRow) -> Option<String> {
        row.metadata
            .get("cancel_requested_at")
            .and_then(|v| v.as_str())
            .map(str::to_string)
    }

    /// Cancelling a running job records a request and leaves it `running` (so its unique key
    /// stays held) until the worker that runs it has stopped and written `cancelled` (fenced).
    pub async fn cancel_of_running_job_is_a_request_that_keeps_its_unique_key(db: TestDb) {
        let s = &*db.store;
        let keyed = || {
            job_with(
                "noop",
                InsertOpts {
                    unique_key: Some("report-42".into()),
                    ..Default::default()
                },
            )
        };
        let original = insert(s, keyed()).await;
        let r = claim_one(s, "noop").await;
        assert_eq!(
            s.job_cancel_requests(W).await.unwrap(),
            vec![],
            "nothing requested yet"
        );

        let asked = s.job_cancel(r.id).await.unwrap();
        assert_eq!(
            asked.state,
            JobState::Running,
            "still running until its worker stops it"
        );
        assert!(asked.finalized_at.is_none());
        let at = cancel_requested_at(&asked).expect("the answer says the cancel was requested");
        let again = s.job_cancel(r.id).await.unwrap();
        assert_eq!(
            (again.state, cancel_requested_at(&again)),
            (JobState::Running, Some(at)),
            "asking twice changes nothing"
        );

        let dup = s.job_insert_many(vec![keyed()]).await.unwrap().remove(0);
        assert!(!dup.inserted, "the key stays held while the job runs");
        assert_eq!(dup.job.id, original.id);

        assert_eq!(
            s.job_cancel_requests(W).await.unwrap(),
            vec![r.fence()],
            "the worker finds the request"
        );
        assert_eq!(
            s.job_cancel_requests("worker-b").await.unwrap(),
            vec![],
            "only its own jobs"
        );

        // The worker stops the job and records it (fenced).
        let stale = JobFence {
            attempt: r.attempt + 1,
            ..r.fence()
        };
        assert!(matches!(
            s.job_cancel_running(stale, "cancelled by user".into())
                .await,
            Err(Error::Fenced { .. })
        ));
        let done = s
            .job_cancel_running(r.fence(), "cancelled by user".into())
            .await
            .unwrap();
        assert_eq!((done.state, done.attempt), (JobState::Cancelled, 1));
        assert!(done.finalized_at.is_some());
        assert_eq!(done.errors.last().unwrap().error, "cancelled by user");
        assert_eq!(s.job_cancel_requests(W).await.unwrap(), vec![]);
        assert!(
            matches!(s.job_cancel(r.id).await, Err(Error::Conflict(_))),
            "now final"
        );

        let next = s.job_insert_many(vec![keyed()]).await.unwrap().remove(0);
        assert!(next.inserted, "the key is free once the job has stopped");
        assert!(cancel_requested_at(&next.job).is_none());
    }

    /// A job whose cancel was requested and that stops on its own: a failure, a snooze or a
    /// release at shutdown ends it `cancelled` (River's rule), a success completes it, a final
    /// failure discards it; a user retry afterwards clears the request.
    pub async fn cancel_requested_job_ends_cancelled_unless_it_completes(db: TestDb) {
        let s = &*db.store;
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(insert(s, job("noop")).await.id);
        }
        let last = insert(
            s,
            job_with(
                "noop",
                InsertOpts {
                    max_attempts: Some(1),
                    ..Default::default()
                },
            ),
        )
        .await
        .id;
        let rows = s
            .job_claim(claim("default", &["noop"], 6, W))
            .await
            .unwrap();
        assert_eq!(rows.len(), 6);
        for r in &rows {
            assert_eq!(s.job_cancel(r.id).await.unwrap().state, JobState::Running);
        }
        let row = |id: i64| rows.iter().find(|r| r.id == id).unwrap().clone();

        let failed = s
            .job_fail(fail(&row(ids[0]), "boom", Duration::ZERO))
            .await
            .unwrap();
        assert_eq!(
            (failed.state, failed.errors.last().unwrap().error.as_str()),
            (JobState::Cancelled, "boom")
        );
        assert!(failed.finalized_at.is_some());
        // Given back by a shutdown: the stop that was asked for has happened.
        let released = s
            .job_release(row(ids[4]).fence(), "worker shut down".into())
            .await
            .unwrap();
        assert_eq!(
            (released.state, released.max_attempts),
            (JobState::Cancelled, 25)
        );
        assert!(released.finalized_at.is_some());
        let snoozed = s
            .job_snooze(row(ids[1]).fence(), Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(snoozed.state, JobState::Cancelled);
        assert!(snoozed.finalized_at.is_some());
        assert_eq!(
            s.job_complete_many(vec![row(ids[2]).fence()])
                .await
                .unwrap(),
            vec![true]
        );
        assert_eq!(
            s.job_get(ids[2]).await.unwrap().unwrap().state,
            JobState::Completed,
            "finished first: completed"
        );
        let discarded = s
            .job_fail(fail(&row(last), "boom", Duration::ZERO))
            .await
            .unwrap();
        assert_eq!(
            discarded.state,
            JobState::Discarded,
            "a final failure stays a failure"
        );
        let by_discard = s
            .job_fail(JobFailParams {
                discard: true,
                ..fail(&row(ids[3]), "never", Duration::ZERO)
            })
            .await
            .unwrap();
        assert_eq!(by_discard.state, JobState::Discarded);

        // A retried job starts afresh: the old request does not cancel its next run.
        let back = s.job_retry(ids[0]).await.unwrap();
        assert_eq!(back.state, JobState::Available);
        assert!(
            cancel_requested_at(&back).is_none(),
            "retry clears the request: {}",
            back.metadata
        );
        let again = claim_one(s, "noop").await;
        assert_eq!((again.id, again.attempt), (ids[0], 2));
        assert_eq!(s.job_cancel_requests(W).await.unwrap(), vec![]);
        assert_eq!(
            s.job_snooze(again.fence(), Duration::from_secs(3600))
                .await
                .unwrap()
                .state,
            JobState::Scheduled
        );
    }

    /// A lost worker's job whose cancel was requested is cancelled by the rescuer, not retried.
    pub async fn rescue_of_cancel_requested_job_cancels_it(db: TestDb) {
        let s = &*db.store;
        s.worker_heartbeat(W, "host", 1).await.unwrap();
        let keyed = |k: &str| {
            job_with(
                "noop",
                InsertOpts {
                    unique_key: Some(k.into()),
                    ..Default::default()
                },
            )
        };
        s.job_insert_many(vec![keyed("lost"), keyed("also-lost"), keyed("stuck")])
            .await
            .unwrap();
        let lost = s
            .job_claim(claim("default", &["noop"], 1, "gone"))
            .await
            .unwrap()
            .remove(0);
        let plain = s
            .job_claim(claim("default", &["noop"], 1, "gone"))
            .await
            .unwrap()
            .remove(0);
        let stuck = claim_one(s, "noop").await;
        s.job_cancel(lost.id).await.unwrap();
        s.job_cancel(stuck.id).await.unwrap();

        let lease = JobRescueParams {
            lease: Duration::from_secs(60),
            stuck_after: vec![],
            limit: 100,
        };
        assert_eq!(
            s.job_rescue(lease).await.unwrap(),
            RescueCounts {
                retried: 1,
                discarded: 0,
                cancelled: 1
            }
        );
        let l = s.job_get(lost.id).await.unwrap().unwrap();
        assert_eq!(
            (l.state, l.errors.last().unwrap().error.as_str()),
            (JobState::Cancelled, "worker lost")
        );
        assert!(l.finalized_at.is_some());
        assert_eq!(
            s.job_get(plain.id).await.unwrap().unwrap().state,
            JobState::Retryable,
            "no request: retried"
        );
        assert!(
            s.job_insert_many(vec![keyed("lost")]).await.unwrap()[0].inserted,
            "its key is free"
        );

        tokio::time::sleep(Duration::from_millis(50)).await;
        let stuck_p = JobRescueParams {
            lease: Duration::from_secs(60),
            stuck_after: vec![("noop".into(), Duration::ZERO)],
            limit: 100,
        };
        assert_eq!(
            s.job_rescue(stuck_p).await.unwrap(),
            RescueCounts {
                retried: 0,
                discarded: 0,
                cancelled: 1
            }
        );
        assert_eq!(
            s.job_get(stuck.id).await.unwrap().unwrap().state,
            JobState::Cancelled
        );
    }

    /// A cancel request made through another store (another process) wakes the subscription of
    /// the worker that runs the job: NOTIFY on Postgres, `data_version` on SQLite.
    pub async fn cancel_request_wakes_the_worker_running_the_job(db: TestDb) {
        insert(&*db.store, job("noop")).await;
        let r = claim_one(&*db.store, "noop").await;
        let sub = db.store.wakeup().subscribe_cancel(W);
        let other = db.reopen().await;
        assert_eq!(
            other.job_cancel(r.id).await.unwrap().state,
            JobState::Running
        );
        tokio::time::timeout(Duration::from_secs(30), sub.notified())
            .await
            .expect("woken by another store's cancel");
        assert_eq!(
            db.store.job_cancel_requests(W).await.unwrap(),
            vec![r.fence()]
        );
        // In this process too.
        insert(&*db.store, job("noop")).await;
        let r2 = claim_one(&*db.store, "noop").await;
        db.store.job_cancel(r2.id).await.unwrap();
        tokio::time::timeout(Duration::from_secs(30), sub.notified())
            .await
            .expect("woken by this store's cancel");
    }
}
