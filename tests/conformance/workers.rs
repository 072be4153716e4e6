//! The worker registry and its leases.

use std::time::Duration;

use porter::job::JobState;
use porter::store::*;

use crate::{backend_case, claim, clocked, insert, job, register};

backend_case! {
    async fn worker_registry(db: TestDb) {
        let s = &*db.store;
        s.worker_heartbeat(WorkerHeartbeatParams { id: "w1".into(), host: "host-a".into(), pid: 10 }).await.unwrap();
        s.worker_heartbeat(WorkerHeartbeatParams { id: "w2".into(), host: "host-b".into(), pid: 20 }).await.unwrap();
        let first = s.worker_list().await.unwrap();
        assert_eq!(first.len(), 2);
        tokio::time::sleep(Duration::from_millis(20)).await;
        s.worker_heartbeat(WorkerHeartbeatParams { id: "w1".into(), host: "host-a".into(), pid: 10 }).await.unwrap();
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
}

backend_case! {
    /// A registration another program wrote with queues or kinds of another shape (valid JSON,
    /// not a list of names) reads as one that did not say what it serves, as an old one: the
    /// listing failed, and with it the dashboard's workers page, for every worker (review of 7
    /// Dec).
    async fn a_registration_whose_queues_are_not_a_list_of_names_is_listed(db: TestDb) {
        let s = &*db.store;
        s.worker_heartbeat(WorkerHeartbeatParams { id: "w1".into(), host: "h".into(), pid: 10 }).await.unwrap();
        crate::raw_exec(
            &db,
            "INSERT INTO porter_workers (id, host, pid, queues, kinds) VALUES ('odd', 'h', 2, '[1]', '{\"a\": 2}');
             INSERT INTO porter_workers (id, host, pid, queues, kinds) VALUES ('null', 'h', 3, 'null', '[\"k\", null]')",
        )
        .await;
        let mut listed = s.worker_list().await.unwrap();
        listed.sort_by(|a, b| a.id.cmp(&b.id));
        let read: Vec<_> = listed.iter().map(|w| (w.id.as_str(), w.queues.clone(), w.kinds.clone())).collect();
        assert_eq!(read, vec![("null", None, None), ("odd", None, None), ("w1", None, None)]);
    }
}

backend_case! {
    /// A clean shutdown sweeps registrations silent for a day, but a worker whose own lease is
    /// longer heartbeats less often than that: it stays registered, so its jobs are not
    /// rescued (and run twice) while it runs them.
    async fn a_long_lease_outlives_other_workers_clean_shutdowns(db: TestDb) {
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
            queues: Vec::new(),
            kinds: Vec::new(),
            unsteady: false,
            since_last: None,
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
        let rescue = JobRescueParams { ending: Vec::new(), by: None,
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
}

backend_case! {
    async fn the_jobs_a_worker_runs_are_listed_from_a_claim_time_on(db: TestDb) {
        // What the worker's reconcile reads: its running jobs claimed at or after a time,
        // so that the lookup skips the jobs it ran before.
        let s = &*db.store;
        s.job_insert_many(vec![job("noop"), job("noop"), job("noop")]).await.unwrap();
        let first = s.job_claim(claim("default", &["noop"], 1, "w1")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let between = s.now().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let second = s.job_claim(claim("default", &["noop"], 1, "w1")).await.unwrap();
        let other = s.job_claim(claim("default", &["noop"], 1, "w2")).await.unwrap();
        let ids = |fences: Vec<porter::job::JobFence>| {
            let mut ids: Vec<i64> = fences.iter().map(|f| f.id).collect();
            ids.sort();
            ids
        };
        let all = s.job_list_running("w1", chrono::DateTime::UNIX_EPOCH).await.unwrap();
        assert_eq!(ids(all), vec![first[0].id, second[0].id]);
        let since = s.job_list_running("w1", between).await.unwrap();
        assert_eq!(ids(since), vec![second[0].id]);
        let at_its_claim = s.job_list_running("w1", second[0].attempted_at.unwrap()).await;
        assert_eq!(ids(at_its_claim.unwrap()), vec![second[0].id], "from its claim time on");
        assert_eq!(ids(s.job_list_running("w2", between).await.unwrap()), vec![other[0].id]);
    }
}

backend_case! {
    /// A registered worker whose recorded heartbeat is older than half its lease claims
    /// nothing, by either claim (a queue without limits, a queue with them) or along with a
    /// completion, until its heartbeat is recorded again. A claim sent before a worker stalled
    /// (stopped, or its database locked) and run only after would otherwise take jobs that
    /// other rescuers judge lost at once: they ran twice past the crash bound (seen in the
    /// SIGSTOP chaos test). A worker not registered, or registered without a lease, claims as
    /// before.
    async fn a_worker_whose_heartbeat_is_overdue_claims_nothing(db: TestDb) {
        let (s, clock) = clocked(&db).await;
        let s = &*s;
        let start = s.now().await.unwrap();
        let lease = Duration::from_secs(10);
        s.worker_register(register("stalled", lease, &[])).await.unwrap();
        s.job_insert_many((0..8).map(|_| job("noop")).collect())
            .await
            .unwrap();
        let first = s.job_claim(claim("default", &["noop"], 1, "stalled")).await.unwrap();
        assert_eq!(first.len(), 1, "a fresh heartbeat claims");
        // Within half the lease: still claims.
        clock.set(start + chrono::Duration::milliseconds(5_000));
        let second = s.job_claim(claim("default", &["noop"], 1, "stalled")).await.unwrap();
        assert_eq!(second.len(), 1, "a heartbeat half a lease old claims");
        // Past half the lease: nothing, by any claim.
        clock.set(start + chrono::Duration::milliseconds(5_001));
        assert!(
            s.job_claim(claim("default", &["noop"], 4, "stalled")).await.unwrap().is_empty(),
            "an overdue heartbeat claims nothing"
        );
        let (completed, along) = s
            .job_complete_and_claim(
                vec![first[0].fence()],
                vec![claim("default", &["noop"], 4, "stalled")],
            )
            .await
            .unwrap();
        assert_eq!(completed, vec![true], "its completion is written");
        assert!(along[0].is_empty(), "nothing claimed along: {along:?}");
        s.queue_limit_set(QueueLimitParams {
            queue: "default".into(),
            clear: false,
            set: QueueLimits {
                concurrency: Some(100),
                ..Default::default()
            },
        })
        .await
        .unwrap();
        let limited = s
            .job_claim_limited(claim("default", &["noop"], 4, "stalled"))
            .await
            .unwrap();
        assert!(limited.jobs.is_empty(), "nothing from a queue with limits: {limited:?}");
        // Others claim meanwhile: a worker not registered, one registered without a lease.
        assert_eq!(
            s.job_claim(claim("default", &["noop"], 1, "unregistered")).await.unwrap().len(),
            1
        );
        s.worker_heartbeat(WorkerHeartbeatParams { id: "no-lease".into(), host: "host".into(), pid: 1 })
            .await
            .unwrap();
        clock.set(start + chrono::Duration::hours(1));
        assert_eq!(
            s.job_claim(claim("default", &["noop"], 1, "no-lease")).await.unwrap().len(),
            1
        );
        // Its heartbeat recorded again: it claims again.
        s.worker_register(register("stalled", lease, &[])).await.unwrap();
        assert_eq!(
            s.job_claim(claim("default", &["noop"], 4, "stalled")).await.unwrap().len(),
            4
        );
        let counts = s.job_counts().await.unwrap();
        assert_eq!(
            (counts.total[&JobState::Running], counts.total[&JobState::Completed]),
            (7, 1)
        );
    }
}
