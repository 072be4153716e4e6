//! Inserting jobs: defaults, due times, batches, validation, unique keys, the caller's
//! transaction and the wake-up of subscribers.

use std::time::Duration;

use chrono::Utc;
use porter::job::{InsertOpts, JobState};
use porter::store::*;
use porter::Error;

use crate::{backend_case, claim_one, insert, job, job_with, total};

backend_case! {
    async fn insert_defaults(db: TestDb) {
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
}

backend_case! {
    async fn insert_scheduled_later(db: TestDb) {
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
}

backend_case! {
    async fn insert_many_keeps_order(db: TestDb) {
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
}

backend_case! {
    async fn insert_validation_writes_nothing(db: TestDb) {
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
}

backend_case! {
    async fn unique_key_dedups_unfinished_only(db: TestDb) {
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
}

backend_case! {
    async fn unique_key_within_one_batch(db: TestDb) {
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
}

backend_case! {
    async fn transactional_enqueue_commit_and_rollback(db: TestDb) {
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
}

backend_case! {
    async fn insert_wakes_subscribers(db: TestDb) {
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
}
