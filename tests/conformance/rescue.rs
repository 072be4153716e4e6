//! Rescue: jobs of lost workers and stuck jobs go back to work, judged by the claiming
//! worker's own lease and limits; a stale worker's late write changes nothing.

use std::time::Duration;

use porter::job::{InsertOpts, JobState};
use porter::store::*;

use crate::{backend_case, claim, claim_one, clocked, insert, job, job_with, register, W};

backend_case! {
    async fn rescue_lost_worker_then_stale_completion_changes_nothing(db: TestDb) {
        let s = &*db.store;
        s.worker_heartbeat(WorkerHeartbeatParams { id: "alive".into(), host: "host".into(), pid: 1 }).await.unwrap();
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
        let params = JobRescueParams { ending: Vec::new(), by: None,
            lease: Duration::from_secs(60),
            stuck_after: vec![],
            limit: 100,
        };
        let rescued = s.job_rescue_jobs(params.clone()).await.unwrap();
        assert_eq!(
            rescued.counts(),
            RescueCounts {
                retried: 1,
                discarded: 0,
                cancelled: 0
            }
        );
        // Each rescued job is named by queue and kind, for the rescued-jobs counter.
        assert_eq!(
            rescued.jobs,
            vec![RescuedJob {
                queue: "default".into(),
                kind: "noop".into(),
                state: JobState::Retryable
            }]
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
        let short = JobRescueParams { ending: Vec::new(), by: None,
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
}

backend_case! {
    /// The losses counted are the rescuer's own entries, not a failure of the job's whose
    /// message happens to read "worker lost": such a job's first real loss is forgiven, where
    /// it was counted as its third and, on its last attempt, discarded it (review of 6 Dec).
    async fn a_failure_reading_worker_lost_is_not_counted_as_a_loss(db: TestDb) {
        let s = &*db.store;
        let opts = InsertOpts {
            max_attempts: Some(3),
            ..Default::default()
        };
        let id = insert(s, job_with("noop", opts)).await.id;
        for _ in 0..2 {
            let row = s
                .job_claim(claim("default", &["noop"], 1, W))
                .await
                .unwrap()
                .remove(0);
            s.job_fail(crate::fail(&row, "worker lost", Duration::ZERO))
                .await
                .unwrap();
        }
        s.job_claim(claim("default", &["noop"], 1, "gone"))
            .await
            .unwrap()
            .remove(0);
        let counts = s
            .job_rescue(JobRescueParams { ending: Vec::new(),
                by: None,
                lease: Duration::from_secs(60),
                stuck_after: vec![],
                limit: 100,
            })
            .await
            .unwrap();
        assert_eq!(counts.retried, 1, "the first loss is forgiven: {counts:?}");
        let j = s.job_get(id).await.unwrap().unwrap();
        assert_eq!(
            (j.state, j.attempt, j.max_attempts),
            (JobState::Retryable, 3, 4)
        );
    }
}

backend_case! {
    /// A lost worker does not use up its job's attempt for the first two losses (a kill is
    /// no failure of the job's), but from the third on it counts: a job that kills its worker
    /// every time still ends discarded.
    async fn rescue_discards_when_attempts_used_up(db: TestDb) {
        let s = &*db.store;
        let opts = InsertOpts {
            max_attempts: Some(1),
            ..Default::default()
        };
        let id = insert(s, job_with("noop", opts)).await.id;
        let rescue = || JobRescueParams { ending: Vec::new(), by: None,
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
}

backend_case! {
    /// Issue 11.2: a worker is judged by the lease it registered, not by the rescuer's. A
    /// rescuer with a short lease leaves alone a worker with a long one whose heartbeat is
    /// older than the rescuer's lease, and a rescuer with a long lease rescues a worker whose
    /// own short lease ran out. A registration without a lease (a binary from before the
    /// migration) is judged by the rescuer's lease, as before.
    async fn rescue_judges_a_worker_by_its_own_lease(db: TestDb) {
        let s = &*db.store;
        let hour = Duration::from_secs(3600);
        s.worker_register(register("long-lease", hour, &[]))
            .await
            .unwrap();
        // Registered with its short lease after its claim, below (a worker claims nothing once
        // its heartbeat is older than half its lease).
        s.worker_register(register("short-lease", hour, &[]))
            .await
            .unwrap();
        s.worker_heartbeat(WorkerHeartbeatParams { id: "no-lease".into(), host: "host".into(), pid: 1 }).await.unwrap();
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
        s.worker_register(register("short-lease", Duration::from_millis(1), &[]))
            .await
            .unwrap();
        let none = s
            .job_claim(claim("default", &["noop"], 1, "no-lease"))
            .await
            .unwrap()
            .remove(0);
        // Every heartbeat is now older than a millisecond (SQLite keeps milliseconds).
        tokio::time::sleep(Duration::from_millis(20)).await;
        // A rescuer with a long lease: only the worker whose own lease ran out is lost.
        let long_rescuer = JobRescueParams { ending: Vec::new(), by: None,
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
        let short_rescuer = JobRescueParams { ending: Vec::new(), by: None,
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
        let again = JobRescueParams { ending: Vec::new(), by: None,
            lease: Duration::ZERO,
            stuck_after: vec![],
            limit: 100,
        };
        assert_eq!(s.job_rescue(again).await.unwrap(), RescueCounts::default());
    }
}

backend_case! {
    /// Issue 11.2: a job's stuck limit is the one of the worker that claimed it (its kind's
    /// timeout plus margin there), not the rescuing process's. Jobs of a worker that recorded
    /// no limit (a binary from before the migration) use the rescuer's, as before.
    async fn stuck_limit_is_the_claiming_workers(db: TestDb) {
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
        s.worker_heartbeat(WorkerHeartbeatParams { id: "old-binary".into(), host: "host".into(), pid: 1 }).await.unwrap();
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
        // Heard from since their jobs' limits passed (a stuck job is taken only then).
        s.worker_register(register("hasty", hour, &[("noop", Duration::from_millis(1))])).await.unwrap();
        s.worker_heartbeat(WorkerHeartbeatParams { id: "old-binary".into(), host: "host".into(), pid: 1 }).await.unwrap();
        // A rescuer that would wait an hour: the hasty worker's own limit has passed.
        let p = JobRescueParams { ending: Vec::new(), by: None,
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
        let p = JobRescueParams { ending: Vec::new(), by: None,
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
}

backend_case! {
    async fn rescue_stuck_job(db: TestDb) {
        let s = &*db.store;
        s.worker_heartbeat(WorkerHeartbeatParams { id: W.to_string(), host: "host".into(), pid: 1 }).await.unwrap();
        s.job_insert_many(vec![job("noop"), job("other")])
            .await
            .unwrap();
        let rows = s
            .job_claim(claim("default", &["noop", "other"], 2, W))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Heard from since (a stuck job is taken only then).
        s.worker_heartbeat(WorkerHeartbeatParams { id: W.to_string(), host: "host".into(), pid: 1 }).await.unwrap();
        let p = JobRescueParams { ending: Vec::new(), by: None,
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
}

backend_case! {
    /// A lost worker's job whose cancel was requested is cancelled by the rescuer, not retried.
    async fn rescue_of_cancel_requested_job_cancels_it(db: TestDb) {
        let s = &*db.store;
        s.worker_heartbeat(WorkerHeartbeatParams { id: W.to_string(), host: "host".into(), pid: 1 }).await.unwrap();
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

        let lease = JobRescueParams { ending: Vec::new(), by: None,
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
        s.worker_heartbeat(WorkerHeartbeatParams { id: W.to_string(), host: "host".into(), pid: 1 }).await.unwrap();
        let stuck_p = JobRescueParams { ending: Vec::new(), by: None,
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
}

backend_case! {
    /// A rescue asked by a worker (`by`) judges nobody lost while that worker's own recorded
    /// heartbeat is older than half its lease, nor in its first lease, nor for a lease after a
    /// heartbeat that came late: after a stall (its process stopped, the database locked for everyone) every
    /// heartbeat looks old until each worker's held-up one is through, and live workers would
    /// be judged lost. Steady for a lease again, it judges as before; a rescue asked by nobody
    /// judges as before too.
    async fn a_rescuer_whose_own_heartbeats_came_late_judges_nobody_for_a_lease(db: TestDb) {
        let (s, clock) = clocked(&db).await;
        let s = &*s;
        let start = s.now().await.unwrap();
        let lease = Duration::from_secs(10);
        s.worker_register(register("rescuer", lease, &[])).await.unwrap();
        s.worker_register(register("other", lease, &[])).await.unwrap();
        s.job_insert_many(vec![job("noop"), job("noop")]).await.unwrap();
        let held = s.job_claim(claim("default", &["noop"], 2, "other")).await.unwrap();
        assert_eq!(held.len(), 2);
        let by = |worker: Option<&str>| JobRescueParams { ending: Vec::new(),
            lease,
            stuck_after: vec![],
            limit: 1,
            by: worker.map(str::to_string),
        };
        // Both silent for a lease and more: the rescuer's own heartbeat is overdue.
        clock.set(start + chrono::Duration::seconds(11));
        assert_eq!(s.job_rescue(by(Some("rescuer"))).await.unwrap(), RescueCounts::default());
        assert_eq!(
            s.job_rescue(by(Some("not-registered"))).await.unwrap(),
            RescueCounts::default(),
            "a rescuer with no registration judges nobody"
        );
        for j in &held {
            assert_eq!(s.job_get(j.id).await.unwrap().unwrap().state, JobState::Running);
        }
        // Its heartbeat recorded again after that gap: it is steady again only a lease later
        // (meanwhile the others' held-up heartbeats would come in).
        s.worker_register(register("rescuer", lease, &[])).await.unwrap();
        assert_eq!(s.job_rescue(by(Some("rescuer"))).await.unwrap(), RescueCounts::default());
        // Nor does a worker judge in its first lease (it may have started during the stall).
        s.worker_register(register("newcomer", lease, &[])).await.unwrap();
        assert_eq!(s.job_rescue(by(Some("newcomer"))).await.unwrap(), RescueCounts::default());
        for at in [14, 17, 20] {
            clock.set(start + chrono::Duration::seconds(at));
            s.worker_register(register("rescuer", lease, &[])).await.unwrap();
        }
        clock.set(start + chrono::Duration::milliseconds(20_999));
        assert_eq!(
            s.job_rescue(by(Some("rescuer"))).await.unwrap(),
            RescueCounts::default(),
            "steady for less than a lease"
        );
        // Steady for a lease, the other still silent: the other is lost.
        clock.set(start + chrono::Duration::seconds(21));
        assert_eq!(s.job_rescue(by(Some("rescuer"))).await.unwrap().retried, 1);
        // Asked by nobody: judged as before.
        assert_eq!(s.job_rescue(by(None)).await.unwrap().retried, 1);
        for j in &held {
            assert_eq!(s.job_get(j.id).await.unwrap().unwrap().state, JobState::Retryable);
        }
    }
}

backend_case! {
    /// Mixed leases and a stall: a rescuer with a long lease heartbeats too seldom to see a
    /// stall shorter than half its lease, which is longer than a short-lease worker's whole
    /// lease. So it judges such a worker only once that worker has been silent for the
    /// rescuer's own lease too, unless a worker whose lease is no longer than the judged one's
    /// vouches for the time (its heartbeat fresh, and steady for the judged worker's lease).
    /// Review of 7 Dec: a 60 s rescuer judged a live 15 s worker lost after a 20 s stall, and
    /// its jobs ran twice.
    async fn a_long_lease_rescuer_does_not_take_a_short_stall_for_a_short_lease_workers_loss(db: TestDb) {
        let (s, clock) = clocked(&db).await;
        let s = &*s;
        let start = s.now().await.unwrap();
        let at = |secs: f64| start + chrono::Duration::milliseconds((secs * 1000.0) as i64);
        let (long, short) = (Duration::from_secs(60), Duration::from_secs(15));
        s.worker_register(register("rescuer", long, &[])).await.unwrap();
        s.worker_register(register("short", short, &[])).await.unwrap();
        s.job_insert_many(vec![job("noop"), job("noop")]).await.unwrap();
        let held = s.job_claim(claim("default", &["noop"], 2, "short")).await.unwrap();
        assert_eq!(held.len(), 2);
        let by = JobRescueParams { ending: Vec::new(), lease: long, stuck_after: vec![], limit: 10, by: Some("rescuer".into()) };
        // Both heartbeat on time for a minute...
        for t in (5..=60).step_by(5) {
            clock.set(at(t as f64));
            s.worker_register(register("short", short, &[])).await.unwrap();
            if t % 20 == 0 {
                s.worker_register(register("rescuer", long, &[])).await.unwrap();
            }
        }
        // ...then the database takes no heartbeat for 20 s. The rescuer's comes through first
        // (20 s after its last: on time, for a 60 s lease), and its pass runs before the short
        // worker's held-up heartbeat is through.
        clock.set(at(80.0));
        s.worker_register(register("rescuer", long, &[])).await.unwrap();
        clock.set(at(80.5));
        assert_eq!(s.job_rescue(by.clone()).await.unwrap(), RescueCounts::default(), "a stall, not a loss");
        clock.set(at(80.6));
        s.worker_register(register("short", short, &[])).await.unwrap();
        // Then the short worker dies. Without a worker of its lease to vouch, it is judged
        // once silent for the rescuer's lease...
        clock.set(at(100.0));
        s.worker_register(register("rescuer", long, &[])).await.unwrap();
        assert_eq!(s.job_rescue(by.clone()).await.unwrap(), RescueCounts::default(), "silent 19.4 s");
        // ...or as soon as a worker of a lease no longer than its own has heartbeated steadily
        // for that lease.
        s.worker_register(register("witness", short, &[])).await.unwrap();
        for t in [104.0, 108.0, 112.0, 114.9] {
            clock.set(at(t));
            s.worker_register(register("witness", short, &[])).await.unwrap();
        }
        assert_eq!(s.job_rescue(by.clone()).await.unwrap(), RescueCounts::default(), "the witness is steady for 14.9 s only");
        clock.set(at(116.0));
        s.worker_register(register("witness", short, &[])).await.unwrap();
        assert_eq!(s.job_rescue(by.clone()).await.unwrap().retried, 2);
        for j in &held {
            assert_eq!(s.job_get(j.id).await.unwrap().unwrap().state, JobState::Retryable);
        }
    }
}

backend_case! {
    /// A lost worker's job is rescued as lost (no attempt used, `worker lost`), however long
    /// ago it started: the stuck pass takes only the jobs of live workers. Review of 6 Dec: with
    /// every worker down for longer than a kind's stuck limit (its timeout plus 30 s), the
    /// worker started again judged nobody lost in its first lease (its own heartbeats not yet
    /// steady), but its stuck pass, which looked at no worker, took the crashed worker's job
    /// for one that ran past its timeout: an attempt used, a job on its last attempt discarded,
    /// and its waiting children cancelled.
    async fn a_lost_workers_job_past_its_stuck_limit_is_rescued_as_lost_not_stuck(db: TestDb) {
        let (s, clock) = clocked(&db).await;
        let s = &*s;
        let start = s.now().await.unwrap();
        let lease = Duration::from_secs(10);
        let stuck = Duration::from_secs(90);
        s.worker_register(register("crashed", lease, &[("noop", stuck)])).await.unwrap();
        let parent = insert(s, job_with("noop", InsertOpts { max_attempts: Some(1), ..Default::default() })).await;
        let child = insert(s, job_with("noop", InsertOpts { depends_on: vec![parent.id], ..Default::default() })).await;
        let claimed = s.job_claim(claim("default", &["noop"], 10, "crashed")).await.unwrap();
        assert_eq!(claimed.iter().map(|j| j.id).collect::<Vec<_>>(), [parent.id]);
        let rescue = || JobRescueParams { ending: Vec::new(),
            lease,
            stuck_after: vec![("noop".into(), stuck)],
            limit: 10,
            by: Some("restarted".into()),
        };
        // Everything down for 100 s; a worker starts again and rescues in its first lease.
        clock.set(start + chrono::Duration::seconds(100));
        s.worker_register(register("restarted", lease, &[("noop", stuck)])).await.unwrap();
        assert_eq!(s.job_rescue(rescue()).await.unwrap(), RescueCounts::default());
        assert_eq!(s.job_get(parent.id).await.unwrap().unwrap().state, JobState::Running);
        // Steady for a lease, it judges the crashed worker lost.
        for at in [104, 107, 110] {
            clock.set(start + chrono::Duration::seconds(at));
            s.worker_register(register("restarted", lease, &[("noop", stuck)])).await.unwrap();
        }
        clock.set(start + chrono::Duration::seconds(111));
        assert_eq!(s.job_rescue(rescue()).await.unwrap().retried, 1);
        let rescued = s.job_get(parent.id).await.unwrap().unwrap();
        assert_eq!(
            (rescued.state, rescued.max_attempts, rescued.errors.last().unwrap().error.as_str()),
            (JobState::Retryable, 2, "worker lost"),
            "{rescued:?}"
        );
        assert_eq!(s.job_get(child.id).await.unwrap().unwrap().state, JobState::Pending);
        // A live worker's job past its limit is still stuck.
        let other = insert(s, job("slow")).await;
        assert_eq!(s.job_claim(claim("default", &["slow"], 10, "restarted")).await.unwrap()[0].id, other.id);
        for at in [114, 117, 120, 123, 126, 129, 132, 135, 138, 141, 144, 147, 150, 153, 156, 159,
                   162, 165, 168, 171, 174, 177, 180, 183, 186, 189, 192, 195, 198, 201, 204, 207] {
            clock.set(start + chrono::Duration::seconds(at));
            s.worker_register(register("restarted", lease, &[("slow", stuck)])).await.unwrap();
        }
        let counts = s.job_rescue(rescue()).await.unwrap();
        assert_eq!(counts.retried, 1, "{counts:?}");
        let stuck_job = s.job_get(other.id).await.unwrap().unwrap();
        assert_eq!(stuck_job.errors.last().unwrap().error, "job ran past its timeout");
    }
}

backend_case! {
    /// A worker row whose stuck limit for a kind is not a number (another program wrote it)
    /// has that limit judged as missing (the rescuer's own applies), and the pass goes on for
    /// every other job. Review of 6 Dec: on PostgreSQL the cast of `"abc"` failed every stuck
    /// pass, for every worker's jobs (and the failing pass hid what the lost pass rescued from
    /// the rescuer's counts); SQLite read it as 0 ms and rescued the job at once.
    async fn a_stuck_limit_that_is_not_a_number_is_judged_as_missing(db: TestDb) {
        let s = &*db.store;
        let hour = Duration::from_secs(3600);
        s.worker_register(register("odd", hour, &[("noop", hour)])).await.unwrap();
        s.worker_register(register("hasty", hour, &[("noop", Duration::from_millis(1))])).await.unwrap();
        crate::raw_exec(&db, "UPDATE porter_workers SET stuck_after = '{\"noop\": \"abc\"}' WHERE id = 'odd'").await;
        s.job_insert_many(vec![job("noop"), job("noop")]).await.unwrap();
        let odd = s.job_claim(claim("default", &["noop"], 1, "odd")).await.unwrap().remove(0);
        let hasty = s.job_claim(claim("default", &["noop"], 1, "hasty")).await.unwrap().remove(0);
        tokio::time::sleep(Duration::from_millis(20)).await;
        s.worker_register(register("hasty", hour, &[("noop", Duration::from_millis(1))])).await.unwrap();
        let counts = s
            .job_rescue(JobRescueParams { ending: Vec::new(), by: None, lease: hour, stuck_after: vec![("noop".into(), hour)], limit: 100 })
            .await
            .expect("the pass goes through");
        assert_eq!(counts.retried, 1, "{counts:?}");
        assert_eq!(s.job_get(hasty.id).await.unwrap().unwrap().state, JobState::Retryable);
        assert_eq!(s.job_get(odd.id).await.unwrap().unwrap().state, JobState::Running, "within the rescuer's hour");
        // Numbers past what a time can be moved by: a limit of 1e20 or 1e400 ms, a lease of
        // 9e18 ms (the review of the fix above: each failed every pass on PostgreSQL, "interval
        // out of range", and the lease the lost workers' pass and the listings too). Read as
        // about 1,268 years: such workers are live, their jobs not stuck.
        for (id, limit) in [("vast", "1e20"), ("vaster", "1e400"), ("below", "-1e400")] {
            s.worker_register(register(id, hour, &[("noop", hour)])).await.unwrap();
            crate::raw_exec(&db, &format!("UPDATE porter_workers SET stuck_after = '{{\"noop\": {limit}}}' WHERE id = '{id}'")).await;
        }
        s.worker_register(register("long-lived", hour, &[("noop", hour)])).await.unwrap();
        crate::raw_exec(&db, "UPDATE porter_workers SET lease_ms = 9000000000000000000 WHERE id = 'long-lived'").await;
        s.job_insert_many((0..4).map(|_| job("noop")).collect()).await.unwrap();
        for id in ["vast", "vaster", "below", "long-lived"] {
            assert_eq!(s.job_claim(claim("default", &["noop"], 1, id)).await.unwrap().len(), 1, "{id}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Heard from since (a heartbeat that leaves the registration's limits as written).
        s.worker_heartbeat(WorkerHeartbeatParams { id: "below".into(), host: "host".into(), pid: 1 }).await.unwrap();
        let counts = s
            .job_rescue(JobRescueParams { ending: Vec::new(), by: None, lease: hour, stuck_after: vec![("noop".into(), hour)], limit: 100 })
            .await
            .expect("the pass goes through");
        // The one below 0 is stuck at once (a limit of 0), as a limit of 0 is.
        assert_eq!(counts.retried, 1, "{counts:?}");
        s.job_unserved().await.expect("the listing reads");
        s.worker_delete("long-lived").await.expect("a worker of such a lease deregisters");
        // And below zero (review of that fix: only the top was clamped): such a worker is lost.
        // (Its claims take nothing: its heartbeat is never within half of such a lease. Its
        // job is claimed before the lease is written.)
        s.worker_register(register("negative", hour, &[("noop", hour)])).await.unwrap();
        s.job_insert_many(vec![job("noop")]).await.unwrap();
        assert_eq!(s.job_claim(claim("default", &["noop"], 1, "negative")).await.unwrap().len(), 1);
        crate::raw_exec(&db, "UPDATE porter_workers SET lease_ms = -9000000000000000000 WHERE id = 'negative'").await;
        assert!(s.job_claim(claim("default", &["noop"], 1, "negative")).await.expect("the claim reads").is_empty());
        let counts = s
            .job_rescue(JobRescueParams { ending: Vec::new(), by: None, lease: hour, stuck_after: vec![("noop".into(), hour)], limit: 100 })
            .await
            .expect("the pass goes through");
        // Lost: its job, and the deregistered long-lived worker's.
        assert_eq!(counts.retried, 2, "{counts:?}");
        s.job_unserved().await.expect("the listing reads");
        s.worker_delete("negative").await.expect("a worker of such a lease deregisters");
    }
}

backend_case! {
    /// A worker back from a stall (a heartbeat more than half its lease after the one before:
    /// a database outage, a write lock held long) is not judged to have stuck jobs for 2.5 s
    /// (a third of its lease when shorter): its outcomes written during the stall are still
    /// being retried, and the first heartbeat can land before them. Review of 7 Dec: after a
    /// 90 s outage the worker's own stuck pass took a job whose completion landed 0.2-1.2 s
    /// later (fenced off), and the job ran twice; on SQLite a write lock held 95 s did the
    /// same. A truly stuck job is taken once those seconds have passed.
    async fn a_worker_back_from_a_stall_has_moments_to_land_its_outcomes_before_its_jobs_are_judged_stuck(db: TestDb) {
        let (s, clock) = clocked(&db).await;
        let s = &*s;
        let start = s.now().await.unwrap();
        let at = |secs: i64| start + chrono::Duration::seconds(secs);
        let lease = Duration::from_secs(10);
        let stuck = Duration::from_secs(30);
        s.worker_register(register("w", lease, &[("noop", stuck)])).await.unwrap();
        let j = insert(s, job("noop")).await;
        assert_eq!(s.job_claim(claim("default", &["noop"], 1, "w")).await.unwrap()[0].id, j.id);
        let rescue = |by: Option<&str>| rescue_noop(lease, stuck, by);
        for t in [3, 6, 9, 12] {
            clock.set(at(t));
            s.worker_register(register("w", lease, &[("noop", stuck)])).await.unwrap();
        }
        // An outage from 12 s to 40 s: the job finished meanwhile, its completion not written.
        clock.set(at(40));
        s.worker_register(register("w", lease, &[("noop", stuck)])).await.unwrap();
        clock.set(at(40) + chrono::Duration::milliseconds(200));
        for by in [None, Some("w")] {
            assert_eq!(s.job_rescue(rescue(by)).await.unwrap(), RescueCounts::default(), "{by:?}");
        }
        assert_eq!(s.job_get(j.id).await.unwrap().unwrap().state, JobState::Running);
        // Its completion lands and counts.
        clock.set(at(41));
        let fence = s.job_get(j.id).await.unwrap().unwrap().fence();
        assert_eq!(s.job_complete_many(vec![fence]).await.unwrap(), vec![true]);
        assert_eq!(s.job_get(j.id).await.unwrap().unwrap().state, JobState::Completed);

        // A job that is truly stuck is taken once the worker has been steady for a lease.
        let k = insert(s, job("noop")).await;
        assert_eq!(s.job_claim(claim("default", &["noop"], 1, "w")).await.unwrap()[0].id, k.id);
        for t in [43, 46, 49] {
            clock.set(at(t));
            s.worker_register(register("w", lease, &[("noop", stuck)])).await.unwrap();
        }
        // A second stall, from 49 s to 80 s (the job claimed at 41 s is past its limit at 71 s).
        clock.set(at(80));
        s.worker_register(register("w", lease, &[("noop", stuck)])).await.unwrap();
        clock.set(at(82));
        assert_eq!(s.job_rescue(rescue(None)).await.unwrap(), RescueCounts::default());
        clock.set(at(83));
        assert_eq!(s.job_rescue(rescue(None)).await.unwrap().retried, 1, "3 s after it");
        let taken = s.job_get(k.id).await.unwrap().unwrap();
        assert_eq!(
            (taken.state, taken.errors.last().unwrap().error.as_str()),
            (JobState::Retryable, "job ran past its timeout")
        );
    }
}

backend_case! {
    /// A heartbeat that says its worker still has outcomes failing (`unsteady`: after an outage
    /// it may be the first write to get through, before the completions it retries) holds stuck
    /// passes back as a late heartbeat does: for 2.5 s, a third of the lease when shorter.
    /// Review of 7 Dec: a partition shorter than half the lease leaves no heartbeat late, and a
    /// stuck pass between the first heartbeat through and the completion took the completed job
    /// and ran it again. A steady heartbeat on time after it does not start the wait over.
    async fn a_heartbeat_with_outcomes_still_failing_holds_stuck_passes_back_a_moment(db: TestDb) {
        let (s, clock) = clocked(&db).await;
        let s = &*s;
        let start = s.now().await.unwrap();
        let at = |ms: i64| start + chrono::Duration::milliseconds(ms);
        let lease = Duration::from_secs(10);
        let stuck = Duration::from_secs(30);
        let beat = |unsteady: bool| WorkerRegisterParams {
            unsteady,
            ..register("w", lease, &[("noop", stuck)])
        };
        s.worker_register(beat(false)).await.unwrap();
        let j = insert(s, job("noop")).await;
        assert_eq!(s.job_claim(claim("default", &["noop"], 1, "w")).await.unwrap()[0].id, j.id);
        let rescue = |by: Option<&str>| rescue_noop(lease, stuck, by);
        for t in (3..=30).step_by(3) {
            clock.set(at(t * 1000));
            s.worker_register(beat(false)).await.unwrap();
        }
        // The job finished at 29 s, its completion failing since; the heartbeat at 31 s is on
        // time, after the job's limit (30 s), and says so.
        clock.set(at(31_000));
        s.worker_register(beat(true)).await.unwrap();
        clock.set(at(31_200));
        for by in [None, Some("w")] {
            assert_eq!(s.job_rescue(rescue(by)).await.unwrap(), RescueCounts::default(), "{by:?}");
        }
        clock.set(at(32_000));
        let fence = s.job_get(j.id).await.unwrap().unwrap().fence();
        assert_eq!(s.job_complete_many(vec![fence]).await.unwrap(), vec![true]);

        // A job truly stuck: taken 2.5 s after the last such heartbeat, a steady one between.
        let k = insert(s, job("noop")).await;
        assert_eq!(s.job_claim(claim("default", &["noop"], 1, "w")).await.unwrap()[0].id, k.id);
        for t in (35..=62).step_by(3) {
            clock.set(at(t * 1000));
            s.worker_register(beat(false)).await.unwrap();
        }
        clock.set(at(63_000));
        s.worker_register(beat(true)).await.unwrap();
        clock.set(at(65_000));
        assert_eq!(s.job_rescue(rescue(None)).await.unwrap(), RescueCounts::default(), "2 s after");
        clock.set(at(65_400));
        s.worker_register(beat(false)).await.unwrap();
        clock.set(at(65_600));
        assert_eq!(s.job_rescue(rescue(None)).await.unwrap().retried, 1, "2.6 s after");
    }
}

backend_case! {
    /// A heartbeat saying its worker still has outcomes failing holds back only the stuck
    /// passes over that worker's jobs: the worker's own rescue of lost workers, and its word
    /// for a shorter-lease worker's loss, go on as after any heartbeat on time. Review of 7 Dec:
    /// 10cfb15 marked the worker as back from a stall, which also stopped it judging anybody
    /// lost for a whole lease after each such heartbeat (with a PostgreSQL pool exhausted on
    /// every worker, nobody rescued a crashed worker's jobs while that lasted).
    async fn a_heartbeat_with_outcomes_still_failing_does_not_pause_the_rescue_of_lost_workers(db: TestDb) {
        let (s, clock) = clocked(&db).await;
        let s = &*s;
        let start = s.now().await.unwrap();
        let at = |secs: i64| start + chrono::Duration::seconds(secs);
        let lease = Duration::from_secs(15);
        let beat = |id: &str, unsteady: bool| WorkerRegisterParams { unsteady, ..register(id, lease, &[]) };
        s.worker_register(beat("me", false)).await.unwrap();
        s.worker_register(beat("dead", false)).await.unwrap();
        let held = insert(s, job("noop")).await;
        assert_eq!(s.job_claim(claim("default", &["noop"], 1, "dead")).await.unwrap()[0].id, held.id);
        for t in (5..=25).step_by(5) {
            clock.set(at(t));
            s.worker_register(beat("me", false)).await.unwrap();
        }
        clock.set(at(30));
        s.worker_register(beat("me", true)).await.unwrap();
        clock.set(at(31));
        let by_me = JobRescueParams { ending: Vec::new(), lease, stuck_after: vec![], limit: 10, by: Some("me".into()) };
        assert_eq!(s.job_rescue(by_me).await.unwrap().retried, 1, "dead since 0 s");
        assert_eq!(s.job_get(held.id).await.unwrap().unwrap().state, JobState::Retryable);
    }
}

backend_case! {
    /// A job past its stuck limit is taken only once its worker has been heard from since the
    /// limit passed: a worker cut off from the database (a partition shorter than its lease)
    /// still counts as live by its last heartbeat, but it may have finished the job and be
    /// retrying the completion. Review of 7 Dec: with a 600 s lease and a 113 s partition, other
    /// workers took two completed jobs for stuck (one ran again, the other, on its last
    /// attempt, was discarded). A worker that heartbeats while its job runs on past the limit
    /// has it taken at its next heartbeat, at most a third of its lease later.
    async fn a_job_past_its_limit_is_stuck_only_once_its_worker_was_heard_from_since(db: TestDb) {
        let (s, clock) = clocked(&db).await;
        let s = &*s;
        let start = s.now().await.unwrap();
        let at = |secs: i64| start + chrono::Duration::seconds(secs);
        let lease = Duration::from_secs(600);
        let stuck = Duration::from_secs(60);
        s.worker_register(register("cut-off", lease, &[("noop", stuck)])).await.unwrap();
        s.worker_register(register("other", lease, &[("noop", stuck)])).await.unwrap();
        let j = insert(s, job("noop")).await;
        assert_eq!(s.job_claim(claim("default", &["noop"], 1, "cut-off")).await.unwrap()[0].id, j.id);
        let rescue = |by: Option<&str>| rescue_noop(lease, stuck, by);
        // Cut off from 1 s to 113 s; the other worker heartbeats and rescues meanwhile.
        for t in [30, 61, 90, 113] {
            clock.set(at(t));
            s.worker_register(register("other", lease, &[("noop", stuck)])).await.unwrap();
            for by in [Some("other"), None] {
                assert_eq!(s.job_rescue(rescue(by)).await.unwrap(), RescueCounts::default(), "at {t} s by {by:?}");
            }
        }
        // Back: its completion lands, and counts.
        clock.set(at(114));
        let fence = s.job_get(j.id).await.unwrap().unwrap().fence();
        assert_eq!(s.job_complete_many(vec![fence]).await.unwrap(), vec![true]);

        // A job that runs on past its limit while its worker heartbeats is taken at the first
        // heartbeat after the limit.
        let k = insert(s, job("noop")).await;
        assert_eq!(s.job_claim(claim("default", &["noop"], 1, "cut-off")).await.unwrap()[0].id, k.id);
        clock.set(at(170));
        s.worker_register(register("cut-off", lease, &[("noop", stuck)])).await.unwrap();
        clock.set(at(175));
        assert_eq!(s.job_rescue(rescue(Some("other"))).await.unwrap(), RescueCounts::default(), "limit at 174 s, heard from at 170 s");
        clock.set(at(176));
        s.worker_register(register("cut-off", lease, &[("noop", stuck)])).await.unwrap();
        clock.set(at(177));
        assert_eq!(s.job_rescue(rescue(Some("other"))).await.unwrap().retried, 1);
        assert_eq!(s.job_get(k.id).await.unwrap().unwrap().errors.last().unwrap().error, "job ran past its timeout");
    }
}

backend_case! {
    /// A worker whose heartbeats keep coming late (each more than half its lease after the one
    /// before: a saturated SQLite writer, or a stuck job tying up one of its runtime's threads)
    /// still has a truly stuck job taken. Review of e060da0: its gate waited a whole lease after
    /// the last late heartbeat, which every heartbeat moved on, so the job stayed `running` for
    /// good. The gate now waits 2.5 s (a third of the lease when shorter): the outcomes of a
    /// stall land by then.
    async fn a_worker_whose_heartbeats_keep_coming_late_still_has_its_stuck_job_taken(db: TestDb) {
        let (s, clock) = clocked(&db).await;
        let s = &*s;
        let start = s.now().await.unwrap();
        let at = |ms: i64| start + chrono::Duration::milliseconds(ms);
        let lease = Duration::from_secs(15);
        let stuck = Duration::from_secs(90);
        s.worker_register(register("late", lease, &[("noop", stuck)])).await.unwrap();
        let j = insert(s, job("noop")).await;
        assert_eq!(s.job_claim(claim("default", &["noop"], 1, "late")).await.unwrap()[0].id, j.id);
        // A heartbeat every 8 s, each more than 7.5 s after the one before.
        for t in (8..=400).step_by(8) {
            clock.set(at(t * 1000));
            s.worker_register(register("late", lease, &[("noop", stuck)])).await.unwrap();
        }
        let rescue = rescue_noop(lease, stuck, None);
        clock.set(at(401_000));
        assert_eq!(s.job_rescue(rescue.clone()).await.unwrap(), RescueCounts::default(), "1 s after a late heartbeat");
        clock.set(at(403_000));
        assert_eq!(s.job_rescue(rescue).await.unwrap().retried, 1, "3 s after it");
        assert_eq!(s.job_get(j.id).await.unwrap().unwrap().errors.last().unwrap().error, "job ran past its timeout");
    }
}

backend_case! {
    /// A heartbeat later by the database's clock than its worker's own clock allows (the
    /// worker's time since its previous heartbeat, `since_last`, plus `CLOCK_JUMP_MARGIN`)
    /// finds the clock jumped ahead (a laptop's sleep, a VM paused): the stuck rescue takes the
    /// jump's length off the time of a job running across it, as the job's own timeout counts
    /// on the monotonic clock, and takes it once it has run its limit by the worker's clock. A
    /// heartbeat late by less than the margin is no jump. (Review of 7 Dec: a job 8 s into a
    /// 20 s run was taken as "ran past its timeout" 3 s after the worker's clock stepped on by
    /// two days; then a jump that restarted the job's time, which a stuck job's rescue
    /// could wait for without end while jumps kept coming.)
    async fn a_jump_of_the_clock_is_taken_off_a_running_jobs_time(db: TestDb) {
        let (s, clock) = clocked(&db).await;
        let s = &*s;
        let start = s.now().await.unwrap();
        let at = |ms: i64| start + chrono::Duration::milliseconds(ms);
        let lease = Duration::from_secs(60);
        let stuck = Duration::from_secs(10);
        let beat = |since_last: Option<u64>| WorkerRegisterParams {
            since_last: since_last.map(Duration::from_millis),
            ..register("w", lease, &[("noop", stuck)])
        };
        s.worker_register(beat(None)).await.unwrap();
        let j = insert(s, job("noop")).await;
        assert_eq!(s.job_claim(claim("default", &["noop"], 1, "w")).await.unwrap()[0].id, j.id);
        let rescue = || rescue_noop(lease, stuck, None);
        clock.set(at(5_000));
        s.worker_register(beat(Some(5_000))).await.unwrap();
        // 15 s by the database's clock, 0.1 s by the worker's: 14.9 s more, no jump.
        clock.set(at(20_000));
        s.worker_register(beat(Some(100))).await.unwrap();
        clock.set(at(22_600));
        s.worker_register(beat(Some(2_600))).await.unwrap();
        assert_eq!(s.job_rescue(rescue()).await.unwrap().retried, 1, "no jump: taken");
        let again = s.job_claim(claim("default", &["noop"], 1, "w")).await.unwrap();
        assert_eq!(again[0].id, j.id);
        assert_eq!(s.job_complete_many(vec![again[0].fence()]).await.unwrap(), vec![true]);

        // Claimed at 22.6 s; an hour by the database's clock, 1 s by the worker's, after 2.4 s.
        let k = insert(s, job("noop")).await;
        assert_eq!(s.job_claim(claim("default", &["noop"], 1, "w")).await.unwrap()[0].id, k.id);
        clock.set(at(25_000));
        s.worker_register(beat(Some(2_400))).await.unwrap();
        clock.set(at(3_625_000));
        s.worker_register(beat(Some(1_000))).await.unwrap();
        // 9.4 s of its run by the worker's clock: not stuck.
        clock.set(at(3_631_000));
        s.worker_register(beat(Some(6_000))).await.unwrap();
        assert_eq!(s.job_rescue(rescue()).await.unwrap(), RescueCounts::default(), "9.4 s run");
        // 10.1 s: past its limit.
        clock.set(at(3_631_700));
        s.worker_register(beat(Some(700))).await.unwrap();
        assert_eq!(s.job_rescue(rescue()).await.unwrap().retried, 1, "10.1 s run");
        assert_eq!(s.job_get(k.id).await.unwrap().unwrap().state, JobState::Retryable);
        let again = s.job_claim(claim("default", &["noop"], 1, "w")).await.unwrap();
        assert_eq!(s.job_complete_many(vec![again[0].fence()]).await.unwrap(), vec![true]);

        // A job claimed after a jump (of 20 s, under half the lease: claims go on) and before
        // the heartbeat that finds it has only its time before that heartbeat taken off, 0.5 s,
        // not the jump's 20 s. (Review of 1670d2a.)
        clock.set(at(3_640_000));
        s.worker_register(beat(Some(8_300))).await.unwrap();
        clock.set(at(3_660_500));
        let m = insert(s, job("noop")).await;
        assert_eq!(s.job_claim(claim("default", &["noop"], 1, "w")).await.unwrap()[0].id, m.id);
        clock.set(at(3_661_000));
        s.worker_register(beat(Some(1_000))).await.unwrap();
        clock.set(at(3_671_500));
        s.worker_register(beat(Some(10_500))).await.unwrap();
        assert_eq!(s.job_rescue(rescue()).await.unwrap().retried, 1, "10.5 s after its claim");
        assert_eq!(s.job_get(m.id).await.unwrap().unwrap().state, JobState::Retryable);
    }
}

backend_case! {
    /// A worker's own stuck pass leaves the jobs it says it is still writing the outcome of
    /// (`ending`: their handler ended), however long they have run: a stuck take would fence
    /// the outcome off and run the job again. Only its own: another worker's job listed there
    /// is taken, and a pass asked by no worker reads no list. (Review of 7 Dec: a first outcome
    /// try held up as the database came back was taken by the worker's own pass.)
    async fn a_workers_own_stuck_pass_leaves_the_jobs_whose_outcome_it_is_writing(db: TestDb) {
        let (s, clock) = clocked(&db).await;
        let s = &*s;
        let start = s.now().await.unwrap();
        let at = |secs: i64| start + chrono::Duration::seconds(secs);
        let lease = Duration::from_secs(60);
        let stuck = Duration::from_secs(10);
        for w in ["w", "other"] {
            s.worker_register(register(w, lease, &[("noop", stuck)])).await.unwrap();
        }
        let mut claimed = Vec::new();
        for w in ["w", "other", "w"] {
            let j = insert(s, job("noop")).await;
            assert_eq!(s.job_claim(claim("default", &["noop"], 1, w)).await.unwrap()[0].id, j.id);
            claimed.push(j.id);
        }
        let [j, k, l] = claimed[..] else { unreachable!() };
        clock.set(at(20));
        for w in ["w", "other"] {
            s.worker_register(register(w, lease, &[("noop", stuck)])).await.unwrap();
        }
        clock.set(at(21));
        let by = |by: Option<&str>, ending: Vec<(i64, i32)>| JobRescueParams { ending, ..rescue_noop(lease, stuck, by) };
        let state = |id: i64| async move { s.job_get(id).await.unwrap().unwrap().state };
        let pass = by(Some("w"), vec![(j, 1), (k, 1), (l, 1)]);
        assert_eq!(s.job_rescue(pass).await.unwrap().retried, 1, "the other worker's job only");
        assert_eq!((state(j).await, state(k).await, state(l).await), (JobState::Running, JobState::Retryable, JobState::Running));
        // Only at the attempt it is writing the outcome of.
        let pass = by(Some("w"), vec![(j, 2), (l, 1)]);
        assert_eq!(s.job_rescue(pass).await.unwrap().retried, 1, "another attempt's outcome");
        assert_eq!((state(j).await, state(l).await), (JobState::Retryable, JobState::Running));
        let pass = by(None, vec![(l, 1)]);
        assert_eq!(s.job_rescue(pass).await.unwrap().retried, 1, "asked by no worker: no list");
        assert_eq!(s.job_get(l).await.unwrap().unwrap().errors.last().unwrap().error, "job ran past its timeout");
    }
}

/// A rescue pass of `lease`, with kind `noop` stuck after `stuck`, asked by `by`.
fn rescue_noop(lease: Duration, stuck: Duration, by: Option<&str>) -> JobRescueParams {
    JobRescueParams {
        ending: Vec::new(),
        lease,
        stuck_after: vec![("noop".into(), stuck)],
        limit: 10,
        by: by.map(str::to_string),
    }
}
