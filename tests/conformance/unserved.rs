//! Jobs nobody will run (issue 17.7): workers register the queues and kinds they serve, and
//! jobs due to run whose (queue, kind) no live worker serves are counted.

use std::time::Duration;

use porter::job::{InsertOpts, JobState};
use porter::store::clock::Clock;
use porter::store::*;
use porter::Error;

use crate::common::TestDb;
use crate::{backend_case, claim, insert, job_with};

/// A registration serving `queues` x `kinds`, with a lease.
fn serving(id: &str, lease: Duration, queues: &[&str], kinds: &[&str]) -> WorkerRegisterParams {
    WorkerRegisterParams {
        queues: queues.iter().map(|q| q.to_string()).collect(),
        kinds: kinds.iter().map(|k| k.to_string()).collect(),
        ..crate::register(id, lease, &[])
    }
}

fn on(queue: &str) -> InsertOpts {
    InsertOpts {
        queue: Some(queue.into()),
        ..Default::default()
    }
}

/// (queue, kind, count) of what nobody serves, in order.
async fn unserved(s: &Store) -> Vec<(String, String, i64)> {
    s.job_unserved()
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.queue, u.kind, u.count))
        .collect()
}

fn row(queue: &str, kind: &str, count: i64) -> (String, String, i64) {
    (queue.into(), kind.into(), count)
}

/// A store on an injected clock, set to the database's own time.
async fn clocked(db: &TestDb) -> (Clock, std::sync::Arc<Store>) {
    let clock = Clock::new();
    let s = porter::store::open_with_clock(&db.url, clock.clone())
        .await
        .unwrap();
    clock.set(s.now().await.unwrap());
    (clock, s)
}

const MINUTE: Duration = Duration::from_secs(60);

backend_case! {
    /// With no worker at all, every job due to run is unserved, counted per queue and kind.
    async fn with_no_worker_every_waiting_job_is_unserved(db: TestDb) {
        let s = &*db.store;
        assert!(unserved(s).await.is_empty(), "no jobs, nothing unserved");
        for _ in 0..3 {
            insert(s, job_with("send", on("emails"))).await;
        }
        insert(s, job_with("noop", on("default"))).await;
        assert_eq!(
            unserved(s).await,
            vec![row("default", "noop", 1), row("emails", "send", 3)]
        );
        assert_eq!(s.worker_count_serving("emails", "send").await.unwrap(), 0);
    }
}

backend_case! {
    /// A worker serves every kind it registered in every queue it registered: a job of a
    /// known kind in another queue, or of an unknown kind in its queue, is unserved.
    async fn a_worker_serves_the_queues_and_kinds_it_registered(db: TestDb) {
        let (_clock, s) = clocked(&db).await;
        let s = &*s;
        s.worker_register(serving("w1", MINUTE, &["default", "critical"], &["noop", "sleep"]))
            .await
            .unwrap();
        insert(s, job_with("noop", on("default"))).await;
        insert(s, job_with("sleep", on("critical"))).await;
        insert(s, job_with("mystery", on("default"))).await;
        insert(s, job_with("noop", on("emails"))).await;
        insert(s, job_with("noop", on("emails"))).await;
        assert_eq!(
            unserved(s).await,
            vec![row("default", "mystery", 1), row("emails", "noop", 2)]
        );
        assert_eq!(s.worker_count_serving("default", "noop").await.unwrap(), 1);
        assert_eq!(s.worker_count_serving("critical", "noop").await.unwrap(), 1);
        assert_eq!(s.worker_count_serving("default", "mystery").await.unwrap(), 0);
        assert_eq!(s.worker_count_serving("emails", "noop").await.unwrap(), 0);
        let listed = s.worker_list().await.unwrap();
        assert_eq!(
            (listed[0].queues.clone(), listed[0].kinds.clone()),
            (
                Some(vec!["default".to_string(), "critical".to_string()]),
                Some(vec!["noop".to_string(), "sleep".to_string()])
            ),
            "the worker list shows what each worker serves"
        );

        // A second worker that serves the queue takes its jobs off the list; a heartbeat that
        // registers other queues replaces the old ones.
        s.worker_register(serving("w2", MINUTE, &["emails"], &["noop"]))
            .await
            .unwrap();
        assert_eq!(unserved(s).await, vec![row("default", "mystery", 1)]);
        assert_eq!(s.worker_count_serving("default", "noop").await.unwrap(), 1);
        s.worker_register(serving("w1", MINUTE, &["critical"], &["noop", "sleep"]))
            .await
            .unwrap();
        assert_eq!(
            unserved(s).await,
            vec![row("default", "mystery", 1), row("default", "noop", 1)]
        );
        // A clean shutdown's deregistration serves nothing any more.
        s.worker_delete("w2").await.unwrap();
        assert_eq!(
            unserved(s).await,
            vec![row("default", "mystery", 1), row("default", "noop", 1), row("emails", "noop", 2)]
        );
    }
}

backend_case! {
    /// "Live" is judged as rescue judges it: a worker whose last heartbeat is older than its
    /// own lease serves nothing, and serves again once it heartbeats.
    async fn a_worker_silent_past_its_lease_serves_nothing(db: TestDb) {
        let (clock, s) = clocked(&db).await;
        let s = &*s;
        let lease = Duration::from_secs(15);
        s.worker_register(serving("short", lease, &["default"], &["noop"]))
            .await
            .unwrap();
        s.worker_register(serving("long", 100 * MINUTE, &["emails"], &["send"]))
            .await
            .unwrap();
        insert(s, job_with("noop", on("default"))).await;
        insert(s, job_with("send", on("emails"))).await;
        assert!(unserved(s).await.is_empty());

        clock.advance(lease - Duration::from_secs(1));
        assert!(unserved(s).await.is_empty(), "within its lease it still serves");
        clock.advance(Duration::from_secs(2));
        assert_eq!(unserved(s).await, vec![row("default", "noop", 1)]);
        assert_eq!(s.worker_count_serving("default", "noop").await.unwrap(), 0);
        assert_eq!(
            s.worker_count_serving("emails", "send").await.unwrap(),
            1,
            "a longer lease still counts"
        );

        s.worker_register(serving("short", lease, &["default"], &["noop"]))
            .await
            .unwrap();
        assert!(unserved(s).await.is_empty(), "a heartbeat makes it live again");
    }
}

backend_case! {
    /// A registration from a binary before workers registered what they serve (a bare
    /// heartbeat: no lease, no queues, no kinds) may serve anything: it hides nothing from
    /// alerts by being counted as serving everything while it is live, judged by the
    /// default lease.
    async fn a_registration_without_queues_serves_everything_while_live(db: TestDb) {
        let (clock, s) = clocked(&db).await;
        let s = &*s;
        s.worker_heartbeat(WorkerHeartbeatParams { id: "old".into(), host: "h".into(), pid: 1 })
            .await
            .unwrap();
        insert(s, job_with("send", on("emails"))).await;
        assert!(unserved(s).await.is_empty());
        assert_eq!(s.worker_count_serving("emails", "send").await.unwrap(), 1);
        let listed = s.worker_list().await.unwrap();
        assert_eq!((listed[0].queues.clone(), listed[0].kinds.clone()), (None, None));
        clock.advance(porter::store::DEFAULT_LEASE + Duration::from_secs(1));
        assert_eq!(unserved(s).await, vec![row("emails", "send", 1)]);
    }
}

backend_case! {
    /// Only jobs due to run wait for a worker: available ones, and scheduled or retryable
    /// ones whose time has come (nobody promotes those in a queue nobody claims from).
    /// Future, running and finished jobs are not counted.
    async fn only_jobs_due_to_run_count_as_unserved(db: TestDb) {
        let (clock, s) = clocked(&db).await;
        let s = &*s;
        let later = InsertOpts {
            queue: Some("emails".into()),
            schedule_in: Some(Duration::from_secs(3600)),
            ..Default::default()
        };
        let future = insert(s, job_with("send", later)).await;
        assert_eq!(future.state, JobState::Scheduled);
        // A job that ran and finished, and one running, under a worker that has since gone.
        s.worker_register(serving("gone", MINUTE, &["reports"], &["build"]))
            .await
            .unwrap();
        insert(s, job_with("build", on("reports"))).await;
        insert(s, job_with("build", on("reports"))).await;
        let got = s.job_claim(claim("reports", &["build"], 2, "gone")).await.unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(s.job_complete_many(vec![got[0].fence()]).await.unwrap(), vec![true]);
        s.worker_delete("gone").await.unwrap();
        assert!(unserved(s).await.is_empty(), "nothing due: {:?}", unserved(s).await);

        clock.advance(Duration::from_secs(3601));
        assert_eq!(unserved(s).await, vec![row("emails", "send", 1)], "due now");
    }
}

backend_case! {
    /// Names are checked before anything is read or written: a registration or a question
    /// naming a queue or kind outside `^[a-z0-9_.-]{1,64}$` is refused, and nothing changes.
    async fn bad_queue_and_kind_names_are_refused(db: TestDb) {
        let s = &*db.store;
        for (queues, kinds) in [
            (vec!["default'; DROP TABLE porter_jobs; --"], vec!["noop"]),
            (vec!["default"], vec!["no\u{7}op"]),
            (vec!["Default"], vec!["noop"]),
            (vec![""], vec!["noop"]),
        ] {
            let err = s
                .worker_register(serving("bad", MINUTE, &queues, &kinds))
                .await
                .unwrap_err();
            assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
        }
        assert!(s.worker_list().await.unwrap().is_empty(), "nothing registered");
        for (queue, kind) in [("x' OR '1'='1", "noop"), ("default", "k\nind"), ("default", "")] {
            let err = s.worker_count_serving(queue, kind).await.unwrap_err();
            assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
        }
    }
}

backend_case! {
    /// A registration another program wrote with queues or kinds of another shape than a list
    /// of names serves anything, as the worker listing reads it (not said, as a registration
    /// from before migration 0009). Until 7 Dec the backends disagreed on `{"default": 1}`
    /// (PostgreSQL's `?` found the key, SQLite's `json_each` did not), and both read `[1]` or
    /// `null` as serving nothing, where the listing shows such a worker serving anything.
    async fn a_registration_whose_queues_are_not_a_list_of_names_serves_anything(db: TestDb) {
        let s = &*db.store;
        insert(s, job_with("noop", on("default"))).await;
        assert_eq!(unserved(s).await, vec![row("default", "noop", 1)]);
        for (queues, kinds) in [
            ("[1]", "[\"noop\"]"),
            ("null", "null"),
            ("{\"default\": 1}", "{\"x\": 1}"),
            ("{\"mail\": 1}", "[\"noop\"]"),
            ("\"mail\"", "7"),
            ("[\"mail\", 2]", "[\"noop\"]"),
            ("[\"default\"]", "[\"other\", null]"),
            // Nested arrays (PostgreSQL's lax path mode looked inside them: review of 7 Dec).
            ("[[\"default\"]]", "[\"noop\"]"),
            ("[[]]", "[[\"noop\"]]"),
        ] {
            crate::raw_exec(
                &db,
                &format!(
                    "INSERT INTO porter_workers (id, host, pid, queues, kinds) VALUES ('odd', 'h', 1, '{queues}', '{kinds}')"
                ),
            )
            .await;
            let listed = s.worker_list().await.unwrap();
            assert!(
                listed[0].queues.is_none() || listed[0].kinds.is_none(),
                "{queues} {kinds}: listed as serving any queue or any kind"
            );
            assert!(unserved(s).await.is_empty(), "{queues} {kinds}");
            assert_eq!(s.worker_count_serving("default", "noop").await.unwrap(), 1, "{queues} {kinds}");
            crate::raw_exec(&db, "DELETE FROM porter_workers").await;
        }
    }
}
