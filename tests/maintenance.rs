//! Maintenance services on both backends: periodic slots (leaderless, durable), rescue by
//! lease, retention. Each service's run_once returns counts, which these tests assert.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use porter::maintenance::{
    PeriodicEnqueuer, PeriodicJob, Rescuer, RescuerConfig, RetentionCleaner, RetentionConfig,
    Schedule,
};
use porter::store::{
    JobClaimParams, JobInsertParams, JobListParams, PeriodicEnqueueParams, Store,
    WorkerHeartbeatParams,
};
use porter::{InsertOpts, JobState};

use crate::common::TestDb;

#[test]
fn cron_expressions_are_validated() {
    assert!(porter::maintenance::Schedule::cron("*/5 * * * *").is_ok());
    assert!(porter::maintenance::Schedule::cron("61 * * * *").is_err());
    assert!(porter::maintenance::Schedule::cron("not cron").is_err());
    // Days that never come parsed, and the schedule silently never ran (review of 6 Dec).
    for never in ["0 0 30 2 *", "0 0 31 4 *", "0 0 0 31 11 *"] {
        let err = porter::maintenance::Schedule::cron(never).expect_err(never);
        assert!(
            err.to_string().contains("names no time that comes"),
            "{err}"
        );
    }
    assert!(
        porter::maintenance::Schedule::cron("0 0 29 2 *").is_ok(),
        "a leap day comes"
    );
}

fn every(name: &str, d: Duration) -> PeriodicJob {
    PeriodicJob {
        name: name.into(),
        ..PeriodicJob::new("noop", Schedule::Every(d))
    }
}

async fn slots_of(store: &Store, name: &str) -> BTreeMap<i64, usize> {
    let mut slots = BTreeMap::new();
    for j in store
        .job_list(JobListParams {
            limit: Some(10_000),
            ..Default::default()
        })
        .await
        .unwrap()
    {
        if j.metadata["periodic"] == name {
            if let Some(slot) = j.metadata["slot"].as_i64() {
                *slots.entry(slot).or_insert(0) += 1;
            }
        }
    }
    slots
}

backend_case! {
    async fn periodic_racing_enqueuers_give_one_job_per_slot(db: TestDb) {
        // Three "processes" (each its own store and enqueuer, no shared memory) race for each
        // of a few one-second slots: all three look at once, then the clock moves one slot
        // on. (On the real clock, an enqueuer that no machine time reached within a whole
        // second left that slot missing: only the latest due slot is enqueued.)
        let clock = porter::store::clock::Clock::new();
        clock.set(db.store.now().await.unwrap());
        let mut enqueuers = Vec::new();
        for i in 0..3 {
            let store = porter::store::open_with_clock(&db.url, clock.clone()).await.unwrap();
            enqueuers.push(PeriodicEnqueuer::new(
                store,
                vec![every("tick", Duration::from_secs(1))],
                format!("w{i}"),
            ));
        }
        let mut inserted = 0;
        for _ in 0..4 {
            let looks = futures::future::join_all(enqueuers.iter_mut().map(|e| e.run_once())).await;
            inserted += looks.into_iter().map(|n| n.unwrap()).sum::<u64>();
            clock.advance(Duration::from_secs(1));
        }
        let slots = slots_of(&db.store, "tick").await;
        assert!(
            slots.values().all(|n| *n == 1),
            "one job per slot: {slots:?}"
        );
        assert_eq!(slots.len() as u64, inserted);
        // (The first look starts the schedule; each later one finds a new slot due.)
        assert_eq!(slots.len(), 3, "a job for each slot after the first: {slots:?}");
        let keys: Vec<i64> = slots.keys().copied().collect();
        assert!(
            keys.windows(2).all(|w| w[1] - w[0] == 1000),
            "no slot missing: {keys:?}"
        );
    }
}

backend_case! {
    async fn periodic_schedule_survives_restarts(db: TestDb) {
        let week = Duration::from_secs(7 * 24 * 3600);
        // Last run a week and a bit ago (recorded by an earlier process).
        let now = db.store.now().await.unwrap().timestamp_millis();
        let step = week.as_millis() as i64;
        let prev = (now.div_euclid(step) - 1) * step;
        let job =
            JobInsertParams::new("noop", serde_json::json!({}), InsertOpts::default()).unwrap();
        db.store
            .periodic_enqueue(PeriodicEnqueueParams {
                name: "weekly".into(),
                slot: prev,
                job,
            })
            .await
            .unwrap();
        // Workers restart every few minutes: each fresh enqueuer has no memory, and together
        // they run the due weekly slot exactly once.
        let mut inserted = 0;
        for i in 0..4 {
            let store = db.reopen().await;
            let mut e =
                PeriodicEnqueuer::new(store, vec![every("weekly", week)], format!("restart-{i}"));
            inserted += e.run_once().await.unwrap();
        }
        assert_eq!(inserted, 1);
        assert_eq!(slots_of(&db.store, "weekly").await.len(), 1);
    }
}

backend_case! {
    async fn periodic_missed_slots_run_once(db: TestDb) {
        let mut e = PeriodicEnqueuer::new(
            db.store.clone(),
            vec![every("minutely", Duration::from_secs(60))],
            "w".into(),
        );
        assert_eq!(
            e.run_once().await.unwrap(),
            0,
            "first sight records the slot, runs nothing"
        );
        // Everything was down for ten slots.
        let now = db.store.now().await.unwrap().timestamp_millis();
        rewind(&db, "minutely", now - 10 * 60_000).await;
        let mut fresh = PeriodicEnqueuer::new(
            db.reopen().await,
            vec![every("minutely", Duration::from_secs(60))],
            "w2".into(),
        );
        assert_eq!(fresh.run_once().await.unwrap(), 1, "one job, not ten");
        assert_eq!(fresh.run_once().await.unwrap(), 0);
    }
}

backend_case! {
    /// A slot recorded by a clock that ran ahead (a VM resumed with a clock in next year, then
    /// set right) does not stop the schedule until real time catches up with it: the slot due
    /// now replaces the mark, once, in the process that saw the future and in a fresh one.
    /// It only moved forward, and no heartbeat or cleanup ran for a year (review of 6 Dec).
    async fn periodic_a_slot_recorded_ahead_of_the_clock_does_not_stop_the_schedule(db: TestDb) {
        let clock = porter::store::clock::Clock::new();
        let store = porter::store::open_with_clock(&db.url, clock.clone()).await.unwrap();
        let minutely = || vec![every("minutely", Duration::from_secs(60))];
        let mut e = PeriodicEnqueuer::new(store.clone(), minutely(), "w".into());
        let now = store.now().await.unwrap();
        clock.set(now - chrono::Duration::minutes(10));
        assert_eq!(e.run_once().await.unwrap(), 0, "first sight records the slot");
        clock.set(now + chrono::Duration::days(365));
        assert_eq!(e.run_once().await.unwrap(), 1, "the clock ran ahead: a slot next year");
        clock.set(now);
        assert_eq!(e.run_once().await.unwrap(), 1, "set right: the slot due now, in this process");
        assert_eq!(e.run_once().await.unwrap(), 0, "once");
        // Another process, the mark next year again.
        clock.set(now + chrono::Duration::days(365));
        assert_eq!(e.run_once().await.unwrap(), 1);
        clock.set(now + chrono::Duration::minutes(1));
        let mut fresh = PeriodicEnqueuer::new(store.clone(), minutely(), "w2".into());
        assert_eq!(fresh.run_once().await.unwrap(), 1, "set right: the slot due now, elsewhere");
        assert_eq!(e.run_once().await.unwrap(), 0, "once across both");
        assert_eq!(fresh.run_once().await.unwrap(), 0);
        // A mark a little ahead (clocks that disagree by a minute) is not taken for one.
        clock.set(now + chrono::Duration::minutes(3));
        assert_eq!(fresh.run_once().await.unwrap(), 1);
        clock.set(now + chrono::Duration::minutes(1));
        let mut third = PeriodicEnqueuer::new(store.clone(), minutely(), "w3".into());
        assert_eq!(third.run_once().await.unwrap(), 0, "within the slack: nothing again");
        assert_eq!(slots_of(&store, "minutely").await.values().sum::<usize>(), 5);
    }
}

backend_case! {
    /// A clock that runs ahead and is set right within the same slot: the slot due now had run
    /// before the jump, so replacing the mark enqueues nothing (review of 6 Dec, evening: it
    /// ran twice, on both backends). A slot after it runs as ever.
    async fn periodic_the_slot_due_when_a_clock_is_set_right_does_not_run_twice(db: TestDb) {
        let clock = porter::store::clock::Clock::new();
        let store = porter::store::open_with_clock(&db.url, clock.clone()).await.unwrap();
        let minute = chrono::Duration::minutes(1);
        let turn = chrono::DateTime::from_timestamp(store.now().await.unwrap().timestamp() / 60 * 60, 0).unwrap();
        let minutely = || vec![every("minutely", Duration::from_secs(60))];
        let mut e = PeriodicEnqueuer::new(store.clone(), minutely(), "w".into());
        clock.set(turn - minute / 2);
        assert_eq!(e.run_once().await.unwrap(), 0, "first sight records the slot");
        clock.set(turn + chrono::Duration::seconds(5));
        assert_eq!(e.run_once().await.unwrap(), 1, "this minute's slot");
        clock.set(turn + chrono::Duration::days(1));
        assert_eq!(e.run_once().await.unwrap(), 1, "the clock ran a day ahead");
        clock.set(turn + chrono::Duration::seconds(30));
        let mut fresh = PeriodicEnqueuer::new(store.clone(), minutely(), "w2".into());
        assert_eq!(fresh.run_once().await.unwrap(), 0, "set right: this minute's slot ran already");
        assert_eq!(e.run_once().await.unwrap(), 0);
        clock.set(turn + minute + chrono::Duration::seconds(5));
        assert_eq!(fresh.run_once().await.unwrap(), 1, "the next minute's slot");
        let slots = slots_of(&store, "minutely").await;
        assert_eq!(slots.get(&turn.timestamp_millis()), Some(&1), "{slots:?}");
        assert_eq!(slots.values().sum::<usize>(), 3, "{slots:?}");

        // A job another program wrote names its slot as a number with a fraction (counted, as
        // the same number) or as a string (not counted), on both backends alike (own review:
        // PostgreSQL compared the text, and answered the other way round from SQLite).
        let client = porter::Client::new(store.clone());
        let minute_ms = minute.num_milliseconds();
        let (float_slot, text_slot) = (turn + minute * 3, turn + minute * 4);
        for (slot, written) in [
            (float_slot, serde_json::json!(float_slot.timestamp_millis() as f64)),
            (text_slot, serde_json::json!(text_slot.timestamp_millis().to_string())),
        ] {
            let opts = porter::job::InsertOpts {
                metadata: Some(serde_json::json!({"periodic": "minutely", "slot": written})),
                ..Default::default()
            };
            client.insert_raw("noop", serde_json::json!({}), opts).await.unwrap();
            clock.set(slot + chrono::Duration::days(1));
            assert_eq!(fresh.run_once().await.unwrap(), 1, "ahead again");
            clock.set(slot + chrono::Duration::seconds(5));
            let ran = slot == text_slot;
            assert_eq!(
                fresh.run_once().await.unwrap(),
                u64::from(ran),
                "slot {} written as {written}",
                slot.timestamp_millis() / minute_ms
            );
        }
    }
}

backend_case! {
    /// A pass that read the time just before a slot turned writes the slot before it after
    /// another process wrote the new one: that later slot is not taken for a clock's that ran
    /// ahead (it is not ahead of now), and nothing is enqueued twice. (Own review of the
    /// rewind: compared with the slot, an hourly schedule's new slot lay an hour "ahead", and
    /// both slots ran twice.)
    async fn periodic_a_pass_that_read_the_time_before_the_slot_turned_enqueues_nothing_twice(db: TestDb) {
        let clock = porter::store::clock::Clock::new();
        let store = porter::store::open_with_clock(&db.url, clock.clone()).await.unwrap();
        let hour = chrono::Duration::hours(1);
        let turn = chrono::DateTime::from_timestamp(store.now().await.unwrap().timestamp() / 3600 * 3600, 0).unwrap();
        let hourly = || vec![every("hourly", Duration::from_secs(3600))];
        clock.set(turn - hour / 2);
        let mut first = PeriodicEnqueuer::new(store.clone(), hourly(), "w1".into());
        assert_eq!(first.run_once().await.unwrap(), 0, "first sight records the slot");
        clock.set(turn + chrono::Duration::seconds(1));
        let mut other = PeriodicEnqueuer::new(store.clone(), hourly(), "w2".into());
        assert_eq!(other.run_once().await.unwrap(), 1, "the new slot");
        // The late pass: its slot is the hour before.
        let late = store
            .periodic_enqueue(PeriodicEnqueueParams {
                name: "hourly".into(),
                slot: (turn - hour).timestamp_millis(),
                job: JobInsertParams::new("noop", serde_json::json!({}), InsertOpts::default()).unwrap(),
            })
            .await
            .unwrap();
        assert!(late.is_none(), "the hour before is not enqueued again");
        assert_eq!(first.run_once().await.unwrap(), 0, "nor the new slot");
        assert_eq!(other.run_once().await.unwrap(), 0);
        assert_eq!(slots_of(&store, "hourly").await.values().sum::<usize>(), 1);
    }
}

backend_case! {
    /// A periodic job that fails at every slot (its parent deleted, say) no longer holds back
    /// the ones after it: each is enqueued, the failure logged and returned once they were.
    async fn periodic_a_failing_job_does_not_hold_back_the_others(db: TestDb) {
        let orphan = PeriodicJob {
            name: "orphan".into(),
            opts: InsertOpts {
                depends_on: vec![i64::MAX],
                ..Default::default()
            },
            ..PeriodicJob::new("noop", Schedule::Every(Duration::from_secs(60)))
        };
        let jobs = vec![orphan, every("after", Duration::from_secs(60))];
        let clock = porter::store::clock::Clock::new();
        let store = porter::store::open_with_clock(&db.url, clock.clone()).await.unwrap();
        let now = store.now().await.unwrap();
        let mut e = PeriodicEnqueuer::new(store.clone(), jobs, "w".into());
        clock.set(now);
        e.run_once().await.unwrap();
        clock.set(now + chrono::Duration::minutes(1));
        let err = e.run_once().await.unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert_eq!(slots_of(&store, "after").await.len(), 1, "the other one was enqueued");
        assert!(slots_of(&store, "orphan").await.is_empty());
    }
}

backend_case! {
    /// A periodic job's own metadata is kept, with porter's keys beside it: they replaced it.
    async fn periodic_jobs_keep_their_own_metadata(db: TestDb) {
        let job = PeriodicJob {
            opts: InsertOpts {
                metadata: Some(serde_json::json!({"team": "ops", "slot": "mine"})),
                ..Default::default()
            },
            ..every("hb", Duration::from_secs(3600)).run_on_start(true)
        };
        let e = PeriodicEnqueuer::new(db.store.clone(), vec![job], "w".into());
        assert_eq!(e.run_start_jobs().await.unwrap(), 1);
        let jobs = db.store.job_list(JobListParams::default()).await.unwrap();
        assert_eq!(jobs[0].metadata["team"], "ops");
        assert_eq!(jobs[0].metadata["periodic"], "hb");
        assert_eq!(jobs[0].metadata["run_on_start"], true);
    }
}

/// Moves a schedule's recorded slot back in time, as if the last run was long ago.
async fn rewind(db: &TestDb, name: &str, slot: i64) {
    match db.sqlite_path() {
        Some(path) => {
            let c = rusqlite::Connection::open(path).unwrap();
            c.busy_timeout(Duration::from_secs(5)).unwrap();
            c.execute(
                "UPDATE porter_periodic SET last_slot = ?1 WHERE name = ?2",
                rusqlite::params![slot, name],
            )
            .unwrap();
        }
        None => {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query("UPDATE porter_periodic SET last_slot = $1 WHERE name = $2")
                .bind(slot)
                .bind(name)
                .execute(&mut c)
                .await
                .unwrap();
        }
    }
}

backend_case! {
    async fn periodic_cron_schedule(db: TestDb) {
        let job = PeriodicJob {
            name: "cron".into(),
            ..PeriodicJob::new("noop", Schedule::cron("* * * * * *").unwrap())
        };
        let mut e = PeriodicEnqueuer::new(db.store.clone(), vec![job], "w".into());
        let mut inserted = 0;
        let end = tokio::time::Instant::now() + Duration::from_millis(2600);
        while tokio::time::Instant::now() < end {
            inserted += e.run_once().await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let slots = slots_of(&db.store, "cron").await;
        assert!(inserted >= 1 && slots.len() as u64 == inserted);
        assert!(
            slots.keys().all(|s| s % 1000 == 0),
            "cron slots fall on whole seconds"
        );
    }
}

backend_case! {
    async fn periodic_run_on_start(db: TestDb) {
        let job = every("hb", Duration::from_secs(3600)).run_on_start(true);
        let e = PeriodicEnqueuer::new(
            db.store.clone(),
            vec![job, every("quiet", Duration::from_secs(3600))],
            "w".into(),
        );
        assert_eq!(e.run_start_jobs().await.unwrap(), 1);
        let jobs = db.store.job_list(JobListParams::default()).await.unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].metadata["run_on_start"], true);
    }
}

backend_case! {
    async fn rescuer_returns_a_lost_workers_jobs(db: TestDb) {
        // On a clock that moves only when told: "within the lease" holds however slow the
        // machine (on the real clock, heartbeat, claim and first pass had to fit in 500 ms).
        let clock = porter::store::clock::Clock::new();
        clock.set(db.store.now().await.unwrap());
        let store = porter::store::open_with_clock(&db.url, clock.clone()).await.unwrap();
        let s = &*store;
        s.job_insert_many(
            (0..3)
                .map(|_| {
                    JobInsertParams::new("noop", serde_json::json!({}), InsertOpts::default())
                        .unwrap()
                })
                .collect(),
        )
        .await
        .unwrap();
        s.worker_heartbeat(WorkerHeartbeatParams { id: "crashed".into(), host: "host".into(), pid: 1 }).await.unwrap();
        let claimed = s
            .job_claim(JobClaimParams {
                queue: "default".into(),
                kinds: vec!["noop".into()],
                limit: 3,
                worker_id: "crashed".into(),
            })
            .await
            .unwrap();
        let rescuer = Rescuer::new(
            store.clone(),
            RescuerConfig {
                lease: Duration::from_millis(500),
                interval: Duration::from_millis(100),
                stuck_after: vec![],
                batch: 2,
                worker: None,
                ending: None,
            },
        );
        assert_eq!(
            rescuer.run_once().await.unwrap().retried,
            0,
            "within the lease"
        );
        clock.advance(Duration::from_millis(700));
        assert_eq!(
            rescuer.run_once().await.unwrap().retried,
            2,
            "bounded batch"
        );
        assert_eq!(rescuer.run_once().await.unwrap().retried, 1);
        for c in claimed {
            assert_eq!(
                s.job_complete_many(vec![c.fence()]).await.unwrap(),
                vec![false],
                "the crashed worker's late write is fenced"
            );
        }
        assert_eq!(s.job_counts().await.unwrap().total[&JobState::Retryable], 3);
    }
}

backend_case! {
    async fn retention_cleaner_deletes_in_batches(db: TestDb) {
        let s: Arc<Store> = db.store.clone();
        finished_jobs(&s, 25, 20).await;
        let keep = RetentionCleaner::new(s.clone(), RetentionConfig::default());
        assert_eq!(
            keep.run_once().await.unwrap(),
            0,
            "a day's retention keeps fresh jobs"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            RetentionCleaner::new(s.clone(), keep_nothing(7))
                .run_once()
                .await
                .unwrap(),
            20
        );
        assert_eq!(
            s.job_counts().await.unwrap().total[&JobState::Available],
            5,
            "unfinished untouched"
        );
    }
}

/// `inserted` jobs, of which the first `finished` are completed (finalized now).
async fn finished_jobs(s: &Arc<Store>, inserted: usize, finished: usize) {
    s.job_insert_many(
        (0..inserted)
            .map(|_| {
                JobInsertParams::new("noop", serde_json::json!({}), InsertOpts::default()).unwrap()
            })
            .collect(),
    )
    .await
    .unwrap();
    let claimed = s
        .job_claim(JobClaimParams {
            queue: "default".into(),
            kinds: vec!["noop".into()],
            limit: finished as u32,
            worker_id: "w".into(),
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), finished);
    s.job_complete_many(claimed.iter().map(|j| j.fence()).collect())
        .await
        .unwrap();
}

fn keep_nothing(batch: u32) -> RetentionConfig {
    RetentionConfig {
        completed: Duration::ZERO,
        cancelled: Duration::ZERO,
        discarded: Duration::ZERO,
        batch,
        ..RetentionConfig::default()
    }
}

backend_case! {
    /// A retention pass ran to its end whatever happened (review of 6 Dec): with a backlog of
    /// finished jobs, a worker's shutdown waited for it until its timeout made it exit 1. It
    /// now stops between batches once its stop is cancelled.
    async fn a_retention_pass_stops_between_batches_once_stopped(db: TestDb) {
        let s: Arc<Store> = db.store.clone();
        finished_jobs(&s, 12, 12).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        let stop = tokio_util::sync::CancellationToken::new();
        stop.cancel();
        let cleaner = RetentionCleaner::new(s.clone(), keep_nothing(5));
        assert_eq!(cleaner.run_once_until(&stop).await.unwrap(), 0);
        // The service: stopped before it began, it deletes no batch and returns.
        tokio::time::timeout(
            Duration::from_secs(30),
            RetentionCleaner::new(s.clone(), keep_nothing(5)).run(stop.clone()),
        )
        .await
        .expect("a stopped retention service returns");
        assert_eq!(s.job_counts().await.unwrap().total[&JobState::Completed], 12);
        // Not stopped, a pass takes them all, batch by batch.
        assert_eq!(cleaner.run_once().await.unwrap(), 12);
    }
}

backend_case! {
    /// A batch of 0 rows deleted nothing and never ended (a core spun for good, review of 6
    /// Dec); an interval of 0 ran passes back to back. Both are refused, with nothing deleted,
    /// and a worker with such a config does not start.
    async fn a_retention_config_of_no_rows_or_no_interval_is_refused(db: TestDb) {
        let s: Arc<Store> = db.store.clone();
        finished_jobs(&s, 3, 3).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        for (config, field) in [
            (keep_nothing(0), "retention batch"),
            (keep_nothing(porter::maintenance::MAX_RETENTION_BATCH + 1), "retention batch"),
            (
                RetentionConfig {
                    interval: Duration::ZERO,
                    ..keep_nothing(5)
                },
                "retention interval",
            ),
        ] {
            let got = tokio::time::timeout(
                Duration::from_secs(30),
                RetentionCleaner::new(s.clone(), config.clone()).run_once(),
            )
            .await
            .expect("a refused config answers at once");
            let err = got.expect_err("refused");
            assert!(err.to_string().contains(field), "{err}");
            let runtime = porter::runtime::Runtime::new(
                s.clone(),
                porter::Workers::new(),
                porter::runtime::RuntimeConfig {
                    retention: config,
                    ..porter::runtime::RuntimeConfig::default()
                },
            )
            .run(porter::runtime::Shutdown::new());
            let refused = tokio::time::timeout(Duration::from_secs(30), runtime)
                .await
                .expect("a refused config is refused at once");
            assert!(refused.unwrap_err().to_string().contains(field));
        }
        assert_eq!(s.job_counts().await.unwrap().total[&JobState::Completed], 3);
        assert_eq!(
            RetentionCleaner::new(s.clone(), keep_nothing(porter::maintenance::MAX_RETENTION_BATCH))
                .run_once()
                .await
                .unwrap(),
            3
        );
    }
}

backend_case! {
    /// A rescuer whose batch is 0 rows rescued nothing, silently, and one whose interval or
    /// lease is 0 ran its passes back to back, a core spinning (review of 6 Dec; retention's
    /// same settings are refused since earlier that day). Each is refused, with nothing
    /// rescued; the service with such a config waits for its stop without a pass.
    async fn a_rescuer_config_of_no_rows_or_no_wait_is_refused(db: TestDb) {
        let s: Arc<Store> = db.store.clone();
        s.job_insert_many(vec![JobInsertParams::new("noop", serde_json::json!({}), InsertOpts::default()).unwrap()])
            .await
            .unwrap();
        let claimed = s
            .job_claim(JobClaimParams { queue: "default".into(), kinds: vec!["noop".into()], limit: 1, worker_id: "gone".into() })
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "a job of a worker that never registered: lost");
        let good = RescuerConfig {
            lease: Duration::from_secs(1),
            interval: Duration::from_millis(200),
            stuck_after: vec![],
            batch: 10,
            worker: None,
            ending: None,
        };
        for (config, field) in [
            (RescuerConfig { batch: 0, ..good.clone() }, "rescuer batch"),
            (RescuerConfig { interval: Duration::ZERO, ..good.clone() }, "rescuer interval"),
            (RescuerConfig { lease: Duration::ZERO, ..good.clone() }, "rescuer lease"),
        ] {
            let err = Rescuer::new(s.clone(), config.clone()).run_once().await.expect_err(field);
            assert!(err.to_string().contains(field), "{err}");
            let stop = tokio_util::sync::CancellationToken::new();
            let service = tokio::spawn(Rescuer::new(s.clone(), config).run(stop.clone()));
            tokio::time::sleep(Duration::from_millis(50)).await;
            stop.cancel();
            tokio::time::timeout(Duration::from_secs(30), service).await.expect("it stops").unwrap();
            assert_eq!(s.job_counts().await.unwrap().total[&JobState::Running], 1, "{field}: nothing rescued");
        }
        assert_eq!(Rescuer::new(s.clone(), good).run_once().await.unwrap().retried, 1);
    }
}

backend_case! {
    /// A slot whose job an unfinished one holds the unique key of (the periodic cleanup's,
    /// while one waits to retry) inserts nothing, and is not counted as inserted: each such
    /// slot was (review of 7 Dec), and logged `enqueued periodic jobs inserted=1`.
    async fn a_periodic_slot_held_by_its_unique_key_counts_nothing(db: TestDb) {
        let keyed = PeriodicJob {
            opts: InsertOpts {
                unique_key: Some("one-at-a-time".into()),
                ..Default::default()
            },
            ..every("keyed", Duration::from_secs(60))
        };
        let mut e = PeriodicEnqueuer::new(db.store.clone(), vec![keyed.clone()], "w".into());
        assert_eq!(e.run_once().await.unwrap(), 0, "first sight records the slot");
        let now = db.store.now().await.unwrap().timestamp_millis();
        rewind(&db, "keyed", now - 60_000).await;
        let mut fresh = PeriodicEnqueuer::new(db.reopen().await, vec![keyed.clone()], "w2".into());
        assert_eq!(fresh.run_once().await.unwrap(), 1, "the due slot inserts its job");
        // That job is still available (unfinished) when the next slot comes.
        rewind(&db, "keyed", now - 60_000).await;
        let mut again = PeriodicEnqueuer::new(db.reopen().await, vec![keyed], "w3".into());
        assert_eq!(again.run_once().await.unwrap(), 0, "its key is held: nothing inserted");
        let jobs = db.store.job_list(Default::default()).await.unwrap();
        assert_eq!(jobs.len(), 1, "{jobs:?}");
    }
}
