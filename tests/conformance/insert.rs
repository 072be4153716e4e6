//! Inserting jobs: defaults, due times, batches, validation, unique keys, the caller's
//! transaction and the wake-up of subscribers.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use porter::job::{InsertOpts, JobState};
use porter::store::*;
use porter::{Client, Error};

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
    /// A due time in a leap second (RFC 3339 allows second 60; chrono keeps it) is stored as
    /// the next second's start on both backends: SQLite wrote `…:34:60.500Z`, which its own
    /// date functions do not read and which sorts before `…:35:00`, while PostgreSQL stored
    /// `…:35:00.500Z` (found by review).
    async fn a_due_time_in_a_leap_second_is_stored_alike(db: TestDb) {
        let s = &*db.store;
        let at = chrono::DateTime::parse_from_rfc3339("2030-06-30T12:34:60.5Z").unwrap().with_timezone(&Utc);
        let job = insert(s, job_with("noop", InsertOpts { scheduled_at: Some(at), ..Default::default() })).await;
        let read = s.job_get(job.id).await.unwrap().unwrap();
        let want = chrono::DateTime::parse_from_rfc3339("2030-06-30T12:35:00.5Z").unwrap().with_timezone(&Utc);
        assert_eq!(read.scheduled_at, want);
        assert_eq!(read.scheduled_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true), "2030-06-30T12:35:00.500Z");
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
    /// The rows an insert answers are the rows the database keeps, whichever statement wrote
    /// them: plain jobs of every queue, priority and payload (a batch of only those is written
    /// by a statement of its own on Postgres, which reads back only the ids), and jobs due
    /// later, keyed, held by a key (also by an earlier job of the same batch), waiting for a
    /// parent, or cancelled at once by a failed one. Small batches and one past the Postgres
    /// group inserter's size take both of its paths. (Args are answered as sent: Postgres keeps
    /// JSON numbers as decimals, so a float of 1e16 or more that is a whole number reads back
    /// later as the same number written as an integer; the payloads here avoid that.)
    async fn an_insert_answers_the_rows_the_database_keeps(db: TestDb) {
        let s = &*db.store;
        let parent = insert(s, job("p")).await;
        let failed = insert(s, job("f")).await;
        s.job_cancel(failed.id).await.unwrap();
        // A parent that completed: its children wait for nothing.
        insert(s, job("done")).await;
        let done = claim_one(s, "done").await;
        assert_eq!(s.job_complete_many(vec![done.fence()]).await.unwrap(), vec![true]);
        insert(s, job_with("k", InsertOpts { unique_key: Some("taken".into()), ..Default::default() })).await;
        let plain = |i: usize| {
            JobInsertParams::new(
                "noop",
                serde_json::json!({"i": i, "s": "it's \"quoted\"", "nested": {"a": [1, 2.5, null]}}),
                InsertOpts {
                    queue: Some(format!("q{}", i % 3)),
                    priority: Some(1 + (i % 4) as i16),
                    max_attempts: Some(1 + i as i32),
                    metadata: Some(serde_json::json!({"m": i})),
                    ..Default::default()
                },
            )
            .unwrap()
        };
        let mixed = |i: usize| match i % 7 {
            0 => job_with("later", InsertOpts { schedule_in: Some(Duration::from_secs(60)), ..Default::default() }),
            1 => job_with("keyed", InsertOpts { unique_key: Some(format!("key-{i}")), ..Default::default() }),
            2 => job_with("held", InsertOpts { unique_key: Some("taken".into()), ..Default::default() }),
            3 => job_with("limited", InsertOpts { concurrency_key: Some("c".into()), ..Default::default() }),
            4 => job_with("child", InsertOpts { depends_on: vec![parent.id], ..Default::default() }),
            5 => job_with("sequenced", InsertOpts { sequence_key: Some("s".into()), ..Default::default() }),
            _ => plain(i),
        };
        // Jobs that differ in their args only (one statement with the rest as values on Postgres).
        let alike = |i: usize| {
            JobInsertParams::new(
                "alike",
                serde_json::json!({"i": i}),
                InsertOpts {
                    queue: Some("u".into()),
                    priority: Some(3),
                    max_attempts: Some(7),
                    metadata: Some(serde_json::json!({"m": [1]})),
                    ..Default::default()
                },
            )
            .unwrap()
        };
        let batches: Vec<Vec<JobInsertParams>> = vec![
            (0..3).map(plain).collect(),
            (0..150).map(alike).collect(),
            (0..101).map(plain).collect(),
            (0..14).map(mixed).collect(),
            (14..21).filter(|i| i % 7 != 4 && i % 7 != 5).map(mixed).collect(),
            // One key twice (the second is held by the first), and a job that starts cancelled
            // (its parent was) with a key another job holds: it takes no key, so it goes in.
            vec![
                job_with("keyed", InsertOpts { unique_key: Some("twice".into()), ..Default::default() }),
                job_with("held", InsertOpts { unique_key: Some("twice".into()), ..Default::default() }),
                job_with(
                    "doomed",
                    InsertOpts { unique_key: Some("taken".into()), depends_on: vec![failed.id], ..Default::default() },
                ),
                plain(0),
            ],
            // Children of a parent that completed, alike but for their args: they start
            // available, and their edges are written too.
            (0..3)
                .map(|i| {
                    JobInsertParams::new(
                        "after_done",
                        serde_json::json!({"i": i}),
                        InsertOpts { depends_on: vec![done.id], ..Default::default() },
                    )
                    .unwrap()
                })
                .collect(),
        ];
        for batch in batches {
            let sent: Vec<(String, serde_json::Value)> =
                batch.iter().map(|j| (j.kind.clone(), j.args.clone())).collect();
            let out = s.job_insert_many(batch).await.unwrap();
            assert_eq!(out.len(), sent.len());
            for (r, (kind, args)) in out.iter().zip(&sent) {
                // A held job is answered with the job that holds its key.
                let held = kind == "held";
                assert_eq!(r.inserted, !held);
                if held {
                    // "taken" by the job inserted first; "twice" by the batch's own first.
                    assert!(["k", "keyed"].contains(&r.job.kind.as_str()), "held by {}", r.job.kind);
                } else {
                    assert_eq!((&r.job.kind, &r.job.args), (kind, args), "answered in input order");
                }
                if kind == "doomed" {
                    assert_eq!(r.job.state, JobState::Cancelled);
                }
                let kept = s.job_get(r.job.id).await.unwrap().unwrap();
                assert_eq!(r.job, kept, "job {} ({kind}) as answered and as kept", r.job.id);
            }
        }
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
    /// The public transactional insert (`Client::insert_tx_sqlite` / `Client::insert_tx_pg`),
    /// inside the caller's own transaction on its own connection: rolled back, no job exists;
    /// committed, the jobs exist and wake a subscriber of their queue (through the database,
    /// `data_version` on SQLite and NOTIFY on Postgres: no porter store saw the insert).
    async fn transactional_enqueue_commit_and_rollback(db: TestDb) {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Numbered {
            n: i64,
        }
        impl porter::JobArgs for Numbered {
            const KIND: &'static str = "noop";
        }
        let s = &*db.store;
        let keyed = || {
            Some(InsertOpts {
                unique_key: Some("u".into()),
                ..Default::default()
            })
        };
        let committed = match db.sqlite_path() {
            Some(path) => {
                let mut c = rusqlite::Connection::open(path).unwrap();
                c.busy_timeout(Duration::from_secs(5)).unwrap();
                let tx = c
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .unwrap();
                let r = Client::insert_tx_sqlite(&tx, &Numbered { n: 1 }, keyed()).unwrap();
                tx.rollback().unwrap();
                assert!(
                    s.job_get(r.job.id).await.unwrap().is_none(),
                    "rolled back: no job"
                );
                assert_eq!(total(s).await, 0, "rolled back: no job");
                let woken = s.wakeup().subscribe("default");
                let tx = c
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .unwrap();
                let a = Client::insert_tx_sqlite(&tx, &Numbered { n: 2 }, None).unwrap();
                let b = Client::insert_tx_sqlite(&tx, &Numbered { n: 3 }, None).unwrap();
                tx.commit().unwrap();
                tokio::time::timeout(Duration::from_secs(30), woken.notified())
                    .await
                    .expect("the commit woke the queue's subscriber");
                [a, b]
            }
            None => {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
                let mut tx = c.begin().await.unwrap();
                let r = Client::insert_tx_pg(&mut tx, &Numbered { n: 1 }, keyed())
                    .await
                    .unwrap();
                tx.rollback().await.unwrap();
                assert!(
                    s.job_get(r.job.id).await.unwrap().is_none(),
                    "rolled back: no job"
                );
                assert_eq!(total(s).await, 0, "rolled back: no job");
                let woken = s.wakeup().subscribe("default");
                let mut tx = c.begin().await.unwrap();
                let a = Client::insert_tx_pg(&mut tx, &Numbered { n: 2 }, None)
                    .await
                    .unwrap();
                let b = Client::insert_tx_pg(&mut tx, &Numbered { n: 3 }, None)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                tokio::time::timeout(Duration::from_secs(30), woken.notified())
                    .await
                    .expect("the commit woke the queue's subscriber");
                [a, b]
            }
        };
        for (r, n) in committed.iter().zip([2, 3]) {
            assert!(r.inserted);
            let row = s.job_get(r.job.id).await.unwrap().expect("committed: the job exists");
            assert_eq!((row.state, row.args["n"].as_i64()), (JobState::Available, Some(n)));
        }
        assert_eq!(total(s).await, 2);
        // The rolled-back insert held key "u" only inside its transaction: the next insert of
        // the key is new.
        let again = JobInsertParams::new("noop", serde_json::json!({}), keyed().unwrap()).unwrap();
        let r = s.job_insert_many(vec![again]).await.unwrap().remove(0);
        assert!(r.inserted);
        assert!(s.job_get(r.job.id).await.unwrap().is_some());
    }
}

backend_case! {
    /// An insert in the caller's transaction counts its times from the insert, not from the
    /// transaction's start: on PostgreSQL a `schedule_in` of 60 s after 1.5 s of the caller's
    /// own work was due 58.5 s after the insert, and its `created_at` was the `BEGIN`'s, where
    /// SQLite counted from the insert (review of 8 Dec).
    async fn an_insert_in_a_callers_transaction_counts_its_times_from_the_insert(db: TestDb) {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Later {}
        impl porter::JobArgs for Later {
            const KIND: &'static str = "noop";
        }
        let s = &*db.store;
        let later = || {
            Some(InsertOpts {
                schedule_in: Some(Duration::from_secs(60)),
                ..Default::default()
            })
        };
        let work = Duration::from_millis(1500);
        let (before, inserted) = match db.sqlite_path() {
            Some(path) => {
                let mut c = rusqlite::Connection::open(path).unwrap();
                c.busy_timeout(Duration::from_secs(5)).unwrap();
                let tx = c
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .unwrap();
                std::thread::sleep(work);
                let before = s.now().await.unwrap();
                let r = Client::insert_tx_sqlite(&tx, &Later {}, later()).unwrap();
                tx.commit().unwrap();
                (before, r)
            }
            None => {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
                let mut tx = c.begin().await.unwrap();
                sqlx::query("SELECT 1").execute(&mut *tx).await.unwrap();
                tokio::time::sleep(work).await;
                let before = s.now().await.unwrap();
                let r = Client::insert_tx_pg(&mut tx, &Later {}, later()).await.unwrap();
                tx.commit().await.unwrap();
                (before, r)
            }
        };
        let row = s.job_get(inserted.job.id).await.unwrap().unwrap();
        // SQLite keeps milliseconds.
        let before = before - chrono::Duration::milliseconds(1);
        assert!(row.created_at >= before, "created {} before the insert ({before})", row.created_at);
        assert!(
            row.scheduled_at >= before + chrono::Duration::seconds(60),
            "due {} sooner than 60 s after the insert ({before})",
            row.scheduled_at
        );
        assert_eq!(row.state, JobState::Scheduled);
        assert_eq!((inserted.job.created_at, inserted.job.scheduled_at), (row.created_at, row.scheduled_at));
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

backend_case! {
    /// One small batch into two queues from another store (Postgres: one statement that also
    /// sends its NOTIFY) wakes the subscribers of both queues here.
    async fn a_batch_from_another_store_wakes_each_of_its_queues(db: TestDb) {
        let first = db.store.wakeup().subscribe("q0");
        let second = db.store.wakeup().subscribe("q1");
        let other = db.reopen().await;
        let jobs = numbered(0, 1).into_iter().chain(numbered(1, 1)).collect();
        let out = other.job_insert_many(jobs).await.unwrap();
        assert_eq!(out.len(), 2);
        for sub in [&first, &second] {
            tokio::time::timeout(Duration::from_secs(30), sub.notified())
                .await
                .expect("woken by another store's insert");
        }
    }
}

backend_case! {
    /// One batch of plain and keyed jobs, some keys held by an earlier batch or by a row of
    /// this one, and a job due later: every job keeps its place in the answer, new ids ascend
    /// in input order, and a held key answers with the holder.
    async fn a_batch_keeps_input_order_across_plain_and_keyed_jobs(db: TestDb) {
        let s = &*db.store;
        let keyed = |k: &str| {
            job_with(
                "k",
                InsertOpts {
                    unique_key: Some(k.into()),
                    ..Default::default()
                },
            )
        };
        let first = s.job_insert_many(vec![keyed("a")]).await.unwrap();
        let batch = vec![
            job("k"),
            keyed("a"), // held by `first`
            keyed("b"),
            job("k"),
            keyed("b"), // held by the row two above
            job_with(
                "k",
                InsertOpts {
                    schedule_in: Some(Duration::from_secs(3600)),
                    ..Default::default()
                },
            ),
        ];
        let out = s.job_insert_many(batch).await.unwrap();
        let inserted: Vec<bool> = out.iter().map(|r| r.inserted).collect();
        assert_eq!(inserted, [true, false, true, true, false, true]);
        assert_eq!(out[1].job.id, first[0].job.id);
        assert_eq!(out[4].job.id, out[2].job.id);
        let new_ids: Vec<i64> = out
            .iter()
            .filter(|r| r.inserted)
            .map(|r| r.job.id)
            .collect();
        assert!(
            new_ids.windows(2).all(|w| w[0] < w[1]),
            "ids ascend in input order: {new_ids:?}"
        );
        assert_eq!(out[5].job.state, JobState::Scheduled);
        assert_eq!(s.job_counts().await.unwrap().total[&JobState::Available], 4);
    }
}

backend_case! {
    /// A batch far larger than one statement's parameter limit (65,535 binds on Postgres,
    /// 32,766 on SQLite) goes in whole, in order.
    async fn a_large_batch_inserts_in_one_go(db: TestDb) {
        let out = db
            .store
            .job_insert_many((0..20_000).map(|_| job("k")).collect())
            .await
            .unwrap();
        assert_eq!(out.len(), 20_000);
        assert!(out.windows(2).all(|w| w[0].job.id < w[1].job.id));
        assert_eq!(total(&db.store).await, 20_000);
    }
}

backend_case! {
    /// Inserts of one unique key racing from several stores (processes) and tasks make one
    /// job, and every caller is answered with it.
    async fn racing_inserts_of_one_unique_key_make_one_job(db: TestDb) {
        let mut stores: Vec<Arc<Store>> = vec![db.store.clone()];
        stores.push(db.reopen().await);
        let keyed = || {
            job_with(
                "k",
                InsertOpts {
                    unique_key: Some("once".into()),
                    ..Default::default()
                },
            )
        };
        let mut inserts = Vec::new();
        for store in &stores {
            for _ in 0..4 {
                let store = store.clone();
                let job = keyed();
                inserts.push(tokio::spawn(async move {
                    store.job_insert_many(vec![job]).await.unwrap().remove(0)
                }));
            }
        }
        let mut results = Vec::new();
        for insert in inserts {
            results.push(insert.await.unwrap());
        }
        assert_eq!(results.iter().filter(|r| r.inserted).count(), 1);
        let ids: HashSet<i64> = results.iter().map(|r| r.job.id).collect();
        assert_eq!(ids.len(), 1, "every caller got the one job");
        assert_eq!(total(&db.store).await, 1);
    }
}

backend_case! {
    /// A unique key held by a transactional insert that then rolls back goes to the insert
    /// that waited for it. This means something on Postgres only: there the waiting insert
    /// blocks on the holder's uncommitted row in the unique index, and must insert (not answer
    /// with a row that never existed) once the holder rolls back. On SQLite the holder's
    /// transaction locks the whole database, so the second insert simply runs after it.
    async fn a_key_held_by_a_transaction_that_rolls_back_goes_to_the_next(db: TestDb) {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Keyed {}
        impl porter::JobArgs for Keyed {
            const KIND: &'static str = "k";
            fn insert_opts(&self) -> InsertOpts {
                InsertOpts {
                    unique_key: Some("k1".into()),
                    ..Default::default()
                }
            }
        }
        let second = || {
            let store = db.store.clone();
            tokio::spawn(async move {
                let job = porter::client::insert_params(&Keyed {}, None).unwrap();
                store.job_insert_many(vec![job]).await.unwrap().remove(0)
            })
        };
        let r = match db.sqlite_path() {
            Some(path) => {
                let mut c = rusqlite::Connection::open(path).unwrap();
                let holder = c
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .unwrap();
                Client::insert_tx_sqlite(&holder, &Keyed {}, None).unwrap();
                let second = second();
                tokio::task::yield_now().await;
                holder.rollback().unwrap();
                second.await.unwrap()
            }
            None => {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
                let mut holder = c.begin().await.unwrap();
                let holder_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                    .fetch_one(&mut *holder)
                    .await
                    .unwrap();
                Client::insert_tx_pg(&mut holder, &Keyed {}, None)
                    .await
                    .unwrap();
                let second = second();
                // Bounded: the watch stops a hung test, it measures nothing.
                let mut watch = sqlx::PgConnection::connect(&db.url).await.unwrap();
                let mut waited = false;
                for _ in 0..3000 {
                    let waiting: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                    )
                    .bind(holder_pid)
                    .fetch_one(&mut watch)
                    .await
                    .unwrap();
                    if waiting > 0 {
                        waited = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                assert!(waited, "the second insert waits on the held key");
                holder.rollback().await.unwrap();
                second.await.unwrap()
            }
        };
        assert!(r.inserted, "the key went to the insert that waited for it");
        let row = db.store.job_get(r.job.id).await.unwrap().expect("its job exists");
        assert_eq!(row.unique_key.as_deref(), Some("k1"));
        assert_eq!(total(&db.store).await, 1);
    }
}

/// Plain jobs whose args say which task and which job of its call they are.
fn numbered(task: usize, n: usize) -> Vec<JobInsertParams> {
    (0..n)
        .map(|j| {
            JobInsertParams::new(
                "k",
                serde_json::json!({"task": task, "j": j}),
                InsertOpts {
                    queue: Some(format!("q{}", task % 3)),
                    ..Default::default()
                },
            )
            .unwrap()
        })
        .collect()
}

backend_case! {
    /// Small inserts from many tasks at once (which the backends group into shared
    /// transactions: the SQLite writer, the Postgres inserter) each get their own jobs, in
    /// their order, as stored; every job is there once.
    async fn concurrent_small_inserts_each_get_their_own_jobs(db: TestDb) {
        let tasks: Vec<_> = (0..300)
            .map(|task| {
                let store = db.store.clone();
                tokio::spawn(async move {
                    let out = store
                        .job_insert_many(numbered(task, 1 + task % 3))
                        .await
                        .unwrap();
                    (task, out)
                })
            })
            .collect();
        let mut ids = HashSet::new();
        let mut jobs = 0;
        for t in tasks {
            let (task, out) = t.await.unwrap();
            assert_eq!(out.len(), 1 + task % 3);
            for (j, r) in out.iter().enumerate() {
                assert!(r.inserted);
                assert_eq!(r.job.args, serde_json::json!({"task": task, "j": j}));
                assert_eq!(r.job.queue, format!("q{}", task % 3));
                assert_eq!(db.store.job_get(r.job.id).await.unwrap().as_ref(), Some(&r.job));
                assert!(ids.insert(r.job.id), "job {} answered twice", r.job.id);
            }
            assert!(out.windows(2).all(|w| w[0].job.id < w[1].job.id));
            jobs += out.len();
        }
        assert_eq!(total(&db.store).await, jobs as i64);
    }
}

backend_case! {
    /// An insert the database refuses (params built by hand past the checks: priority 9 breaks
    /// the table's CHECK) among many at once fails alone: the inserts that shared its group
    /// get their jobs, and nothing of the refused one is written.
    async fn a_refused_insert_among_concurrent_ones_fails_alone(db: TestDb) {
        let mut good = 0;
        for round in 0..4 {
            let tasks: Vec<_> = (0..60)
                .map(|task| {
                    let store = db.store.clone();
                    tokio::spawn(async move {
                        let mut jobs = numbered(task, 1);
                        let bad = task % 20 == 7;
                        if bad {
                            jobs[0].priority = 9;
                        }
                        (bad, store.job_insert_many(jobs).await)
                    })
                })
                .collect();
            for t in tasks {
                match t.await.unwrap() {
                    (true, Err(Error::Invalid { .. })) => {}
                    (true, other) => panic!("round {round}: the refused insert answered {other:?}"),
                    (false, Ok(out)) => {
                        assert!(out[0].inserted);
                        good += 1;
                    }
                    (false, Err(e)) => panic!("round {round}: a good insert failed: {e}"),
                }
            }
        }
        assert_eq!(total(&db.store).await, good);
        assert_eq!(good, 4 * 57);
    }
}

backend_case! {
    /// Plain and keyed single inserts at once: the plain ones all insert, one keyed insert
    /// per key wins and the others of that key are answered with the winner.
    async fn concurrent_plain_and_keyed_inserts_keep_unique_keys(db: TestDb) {
        let tasks: Vec<_> = (0..120)
            .map(|task| {
                let store = db.store.clone();
                tokio::spawn(async move {
                    let key = (task % 2 == 0).then(|| format!("key{}", task % 6));
                    let job = job_with(
                        "k",
                        InsertOpts {
                            unique_key: key.clone(),
                            ..Default::default()
                        },
                    );
                    (key, store.job_insert_many(vec![job]).await.unwrap().remove(0))
                })
            })
            .collect();
        let mut winners = std::collections::HashMap::new();
        let mut answers = Vec::new();
        for t in tasks {
            let (key, r) = t.await.unwrap();
            match key {
                None => assert!(r.inserted),
                Some(key) => {
                    assert_eq!(r.job.unique_key.as_deref(), Some(key.as_str()));
                    if r.inserted {
                        assert!(winners.insert(key.clone(), r.job.id).is_none(), "{key} won twice");
                    }
                    answers.push((key, r.job.id));
                }
            }
        }
        assert_eq!(winners.len(), 3);
        for (key, id) in answers {
            assert_eq!(winners[&key], id, "{key} answered with its winner");
        }
        assert_eq!(total(&db.store).await, 60 + 3);
    }
}

/// What a test batch expects of one job: inserted, or answered with job `held_by` (an index
/// into the batch, or `None` for the job inserted before it).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    Inserted,
    HeldByRow(usize),
    HeldBefore,
}

backend_case! {
    /// A batch well past one statement's limits (65,535 binds on Postgres, 32,766 variables
    /// on SQLite) of jobs of several queues, priorities and due times, with unique keys
    /// repeated inside it and one held from before: every job keeps its place, the first of
    /// each key inserts and the later ones are answered with it, new ids ascend in input
    /// order, and every answer is the stored row.
    async fn a_large_mixed_batch_keeps_every_rule(db: TestDb) {
        let s = &*db.store;
        let keyed = |key: String| InsertOpts {
            unique_key: Some(key),
            ..Default::default()
        };
        let before = s
            .job_insert_many(vec![job_with("k", keyed("held".into()))])
            .await
            .unwrap()
            .remove(0);
        let n = 10_007;
        let mut first_of_key = std::collections::HashMap::new();
        let mut expect = Vec::with_capacity(n);
        let params: Vec<JobInsertParams> = (0..n)
            .map(|i| {
                let (opts, e) = match i % 7 {
                    0 => {
                        let key = format!("k{}", i % 70);
                        let e = match first_of_key.get(&key) {
                            Some(&first) => Expect::HeldByRow(first),
                            None => {
                                first_of_key.insert(key.clone(), i);
                                Expect::Inserted
                            }
                        };
                        (keyed(key), e)
                    }
                    1 if i % 100 == 1 => (keyed("held".into()), Expect::HeldBefore),
                    2 => (
                        InsertOpts {
                            queue: Some("later".into()),
                            schedule_in: Some(Duration::from_secs(3600)),
                            ..Default::default()
                        },
                        Expect::Inserted,
                    ),
                    3 => (
                        InsertOpts {
                            queue: Some("q2".into()),
                            priority: Some(3),
                            max_attempts: Some(2),
                            metadata: Some(serde_json::json!({"i": i})),
                            concurrency_key: Some(format!("c{}", i % 4)),
                            ..Default::default()
                        },
                        Expect::Inserted,
                    ),
                    _ => (
                        InsertOpts {
                            queue: Some(format!("q{}", i % 5)),
                            ..Default::default()
                        },
                        Expect::Inserted,
                    ),
                };
                expect.push(e);
                JobInsertParams::new("k", serde_json::json!({"i": i}), opts).unwrap()
            })
            .collect();
        let out = s.job_insert_many(params.clone()).await.unwrap();
        assert_eq!(out.len(), n);
        for (i, ((p, r), e)) in params.iter().zip(&out).zip(&expect).enumerate() {
            match e {
                Expect::Inserted => {
                    assert!(r.inserted, "row {i} inserts");
                    assert_eq!(r.job.args, p.args);
                    assert_eq!(
                        (&r.job.queue, r.job.priority, r.job.max_attempts),
                        (&p.queue, p.priority, p.max_attempts)
                    );
                    assert_eq!(r.job.metadata, p.metadata);
                    assert_eq!(r.job.concurrency_key, p.concurrency_key);
                    let later = p.schedule_in.is_some();
                    assert_eq!(
                        r.job.state,
                        if later { JobState::Scheduled } else { JobState::Available },
                        "row {i}"
                    );
                }
                Expect::HeldByRow(first) => {
                    assert!(!r.inserted, "row {i} is answered with row {first}");
                    assert_eq!(r.job.id, out[*first].job.id);
                }
                Expect::HeldBefore => {
                    assert!(!r.inserted);
                    assert_eq!(r.job.id, before.job.id);
                }
            }
        }
        let new_ids: Vec<i64> = out.iter().filter(|r| r.inserted).map(|r| r.job.id).collect();
        assert!(new_ids.windows(2).all(|w| w[0] < w[1]), "ids ascend in input order");
        assert!(new_ids[0] > before.job.id);
        let inserted = expect.iter().filter(|e| **e == Expect::Inserted).count();
        assert_eq!(new_ids.len(), inserted);
        assert_eq!(total(s).await, inserted as i64 + 1);
        for r in out.iter().step_by(97) {
            assert_eq!(s.job_get(r.job.id).await.unwrap().as_ref(), Some(&r.job));
        }
    }
}

backend_case! {
    /// Batches sized around the statement sizes a multi-row insert is cut into (on SQLite
    /// 3,276 rows of 10 variables within its 32,766, then 512, 64, 8 and 1; 4,681 rows of 14
    /// binds would be Postgres's 65,535) go in whole, in order.
    async fn batches_at_the_statement_limits_go_in_whole(db: TestDb) {
        let mut all = 0;
        for n in [1, 7, 8, 9, 513, 3_275, 3_276, 3_277, 4_682, 6_553] {
            let params: Vec<_> = (0..n)
                .map(|i| {
                    JobInsertParams::new("k", serde_json::json!({"i": i}), InsertOpts::default())
                        .unwrap()
                })
                .collect();
            let out = db.store.job_insert_many(params).await.unwrap();
            assert_eq!(out.len(), n);
            for (i, r) in out.iter().enumerate() {
                assert!(r.inserted);
                assert_eq!(r.job.args["i"], i, "batch of {n}, row {i}");
            }
            assert!(out.windows(2).all(|w| w[0].job.id < w[1].job.id));
            all += n;
        }
        assert_eq!(total(&db.store).await, all as i64);
    }
}

backend_case! {
    /// Values that break SQL built by hand (quotes, comment marks, placeholders), text of
    /// every script, JSON of every shape and numbers at their limits go in with a batch (and
    /// alone) and come back as given, in the answer and in the stored row; so do unique keys
    /// made of such text.
    async fn hostile_values_come_back_as_given(db: TestDb) {
        let s = &*db.store;
        let values = [
            serde_json::json!({"s": "'; DROP TABLE porter_jobs; --"}),
            serde_json::json!({"s": "\"quoted\" \\ back\\slash / ?1 $1 :name @p"}),
            serde_json::json!({"emoji": "🦀", "cjk": "漢字", "rtl": "\u{202e}abc", "nl": "a\nb\tc\r"}),
            serde_json::json!({"max": i64::MAX, "min": i64::MIN, "u": u64::MAX, "f": 0.1, "big": 1.5e300, "tiny": -2.5e-300}),
            serde_json::json!([1, [2, [3, {"deep": null, "t": true}]]]),
            serde_json::json!("just a string"),
            serde_json::json!(null),
            serde_json::json!({"": "", "{}": "[]", "x".repeat(300): "y".repeat(10_000)}),
        ];
        let keys = ["'", "\"", "?1", "$1", "--", "🦀 key", "a\\b"];
        let mut params = Vec::new();
        for round in 0..3 {
            for v in &values {
                params.push(
                    JobInsertParams::new(
                        "k",
                        v.clone(),
                        InsertOpts {
                            metadata: Some(serde_json::json!({"m": v})),
                            ..Default::default()
                        },
                    )
                    .unwrap(),
                );
            }
            for k in keys {
                params.push(job_with(
                    "k",
                    InsertOpts {
                        unique_key: Some(format!("{k}{round}")),
                        ..Default::default()
                    },
                ));
            }
        }
        let out = s.job_insert_many(params.clone()).await.unwrap();
        let alone = s.job_insert_many(vec![params[2].clone()]).await.unwrap();
        for (p, r) in params.iter().zip(&out).chain(std::iter::once((&params[2], &alone[0]))) {
            assert!(r.inserted);
            assert_eq!(r.job.args, p.args);
            assert_eq!(r.job.metadata, p.metadata);
            assert_eq!(r.job.unique_key, p.unique_key);
            assert_eq!(s.job_get(r.job.id).await.unwrap().as_ref(), Some(&r.job));
        }
    }
}

backend_case! {
    /// `JobInsertParams`' fields are public, so params can be built by hand rather than by
    /// `JobInsertParams::new`: the store checks them as `new` does before it writes anything
    /// (until 5 Dec an empty kind, a queue with spaces or a bell, metadata that is not an
    /// object, a reserved metadata key or a parent named twice went in, or failed in the
    /// database with an error that did not say what was wrong).
    async fn params_built_by_hand_are_checked_as_new_checks_them(db: TestDb) {
        let s = &*db.store;
        let client = Client::new(db.store.clone());
        let parent = insert(s, job("noop")).await;
        let good = job("noop");
        let bad: Vec<(&str, JobInsertParams)> = vec![
            ("kind", JobInsertParams { kind: String::new(), ..good.clone() }),
            ("kind", JobInsertParams { kind: "x';DROP TABLE porter_jobs;--".into(), ..good.clone() }),
            ("queue", JobInsertParams { queue: "no spaces".into(), ..good.clone() }),
            ("queue", JobInsertParams { queue: "bell\u{7}".into(), ..good.clone() }),
            ("priority", JobInsertParams { priority: 9, ..good.clone() }),
            ("max_attempts", JobInsertParams { max_attempts: 0, ..good.clone() }),
            ("unique_key", JobInsertParams { unique_key: Some(String::new()), ..good.clone() }),
            ("concurrency_key", JobInsertParams { concurrency_key: Some("k\0".into()), ..good.clone() }),
            ("sequence_key", JobInsertParams { sequence_key: Some("s".repeat(256)), ..good.clone() }),
            ("depends_on", JobInsertParams { depends_on: vec![parent.id, parent.id], ..good.clone() }),
            ("after_any", JobInsertParams { after_any: true, ..good.clone() }),
            (
                "sequence_key",
                JobInsertParams { sequence_key: Some("s".into()), depends_on: vec![parent.id], ..good.clone() },
            ),
            ("metadata", JobInsertParams { metadata: serde_json::json!([1]), ..good.clone() }),
            (
                "metadata",
                JobInsertParams {
                    metadata: serde_json::json!({ "cancel_requested_at": "2026-01-01T00:00:00Z" }),
                    ..good.clone()
                },
            ),
            ("args", JobInsertParams { args: serde_json::json!({ "nul": "a\0b" }), ..good.clone() }),
            ("args", JobInsertParams { args: serde_json::json!("x".repeat(1 << 20)), ..good.clone() }),
        ];
        for (what, b) in bad {
            let shown = format!("{b:?}").chars().take(200).collect::<String>();
            for out in [
                s.job_insert_many(vec![good.clone(), b.clone()]).await,
                client.insert_many_params(vec![good.clone(), b]).await,
            ] {
                match out {
                    Err(Error::Invalid { what: w, .. }) => assert_eq!(w, what, "{shown}"),
                    other => panic!("{shown}: refused as bad {what}, got {other:?}"),
                }
            }
            assert_eq!(total(s).await, 1, "nothing written for a bad {what}");
        }
        // The same on a caller's connection, inside its transaction: refused before any write.
        let bad = JobInsertParams { queue: "no spaces".into(), ..good.clone() };
        let refused = match db.sqlite_path() {
            Some(path) => {
                let c = rusqlite::Connection::open(path).unwrap();
                c.busy_timeout(Duration::from_secs(5)).unwrap();
                porter::store::sqlite::job_insert_tx(&c, &[good.clone(), bad]).map(|_| ())
            }
            None => {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
                porter::store::postgres::job_insert_tx(&mut c, vec![good.clone(), bad]).await.map(|_| ())
            }
        };
        assert!(matches!(refused, Err(Error::Invalid { what: "queue", .. })), "{refused:?}");
        assert_eq!(total(s).await, 1, "nothing written on the caller's connection either");
        // A periodic job's params too, on both backends (PostgreSQL refused this one and
        // SQLite took it, in review of the first version of this check).
        let periodic = |job| PeriodicEnqueueParams { name: "by-hand".into(), slot: 1000, job };
        for slot in [1000, 2000] {
            let bad = JobInsertParams { queue: "no spaces".into(), ..good.clone() };
            let out = s.periodic_enqueue(PeriodicEnqueueParams { slot, ..periodic(bad) }).await;
            assert!(matches!(out, Err(Error::Invalid { what: "queue", .. })), "{out:?}");
        }
        assert!(s.periodic_list().await.unwrap().is_empty(), "not even the slot is recorded");
        assert_eq!(total(s).await, 1);
        // Params that `new` would have made go in as before.
        let ok = JobInsertParams { depends_on: vec![parent.id], after_any: true, ..good };
        assert!(s.job_insert_many(vec![ok]).await.unwrap()[0].inserted);
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Ratio {
    ratio: f64,
    more: Vec<f32>,
}

impl porter::JobArgs for Ratio {
    const KIND: &'static str = "ratio";
}

backend_case! {
    /// Typed args holding NaN or an infinity are refused, naming them, and nothing is
    /// inserted: serde_json wrote them as null without a word, and the job then failed to
    /// decode its own args at every attempt (review of 6 Dec). In a batch and a workflow step
    /// too; finite floats go in as ever.
    async fn typed_args_holding_nan_or_an_infinity_are_refused(db: TestDb) {
        let client = Client::new(db.store.clone());
        for (ratio, more) in [(f64::NAN, vec![]), (1.0, vec![0.5, f32::INFINITY]), (f64::NEG_INFINITY, vec![])] {
            let refused = client.insert(&Ratio { ratio, more: more.clone() }, None).await;
            assert!(
                matches!(&refused, Err(Error::Invalid { what: "args", message }) if message.contains("NaN or an infinity")),
                "{ratio} {more:?}: {:?}",
                refused.map(|r| r.job.id)
            );
        }
        let mut batch = porter::batch::Batch::new();
        batch.push(&Ratio { ratio: f64::NAN, more: vec![] });
        assert!(client.insert_batch(batch).await.is_err(), "a batch member");
        let workflow = porter::workflow::Workflow::new("w").step(porter::workflow::Step::new("a", &Ratio { ratio: f64::NAN, more: vec![] }));
        assert!(client.insert_workflow(workflow).await.is_err(), "a workflow step");
        assert_eq!(total(&db.store).await, 0, "nothing inserted");
        let taken = client.insert(&Ratio { ratio: 0.25, more: vec![1.5] }, None).await.unwrap();
        let row = db.store.job_get(taken.job.id).await.unwrap().unwrap();
        assert_eq!(row.args, serde_json::json!({"ratio": 0.25, "more": [1.5]}));
    }
}
