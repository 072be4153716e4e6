//! What only the PostgreSQL backend has to prove: connecting and migrating (also from several
//! processes at once), refusing a newer schema, the caller's transaction, NOTIFY across stores,
//! and exclusivity under concurrent callers. The behaviour both backends share is proved by
//! `tests/conformance/`.
//!
//! These run when `PORTER_TEST_DATABASE_URL` was set at build time (`scripts/test` does it);
//! otherwise they are reported ignored.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::job::InsertOpts;

fn base_url() -> String {
    std::env::var("PORTER_TEST_DATABASE_URL").expect("PORTER_TEST_DATABASE_URL is set")
}

async fn fresh_url() -> String {
    PgStore::create_test_schema(&base_url())
        .await
        .expect("create a test schema")
}

async fn fresh_store() -> PgStore {
    PgStore::open(&fresh_url().await).await.expect("open")
}

fn job(kind: &str, opts: InsertOpts) -> JobInsertParams {
    JobInsertParams::new(kind, serde_json::json!({}), opts).unwrap()
}

fn keyed(key: &str) -> JobInsertParams {
    job(
        "k",
        InsertOpts {
            unique_key: Some(key.into()),
            ..Default::default()
        },
    )
}

#[tokio::test]
#[cfg_attr(
    not(porter_pg_tests),
    ignore = "set PORTER_TEST_DATABASE_URL (scripts/test does)"
)]
async fn test_schema_url_selects_its_own_schema() {
    let url = fresh_url().await;
    let store = PgStore::open(&url).await.unwrap();
    let schema: String = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(url.contains(&schema), "{url} selects {schema}");
    assert!(schema.starts_with("porter_test_"));
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'porter_jobs'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(tables, 1);
}

#[tokio::test]
#[cfg_attr(
    not(porter_pg_tests),
    ignore = "set PORTER_TEST_DATABASE_URL (scripts/test does)"
)]
async fn concurrent_opens_of_a_new_database_all_succeed() {
    let url = fresh_url().await;
    let opens = (0..4).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { PgStore::open(&url).await })
    });
    for open in futures::future::join_all(opens).await {
        open.unwrap()
            .expect("every concurrent open migrates or finds the schema migrated");
    }
    let store = PgStore::open(&url).await.unwrap();
    let applied: i64 =
        sqlx::query_scalar("SELECT count(*) FROM porter_migrations WHERE set_name = 'porter'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(applied, migrations::CORE.latest());
}

#[tokio::test]
#[cfg_attr(
    not(porter_pg_tests),
    ignore = "set PORTER_TEST_DATABASE_URL (scripts/test does)"
)]
async fn a_database_with_an_unknown_migration_is_refused() {
    let url = fresh_url().await;
    let store = PgStore::open(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO porter_migrations (set_name, version, name, applied_at)
         VALUES ('porter', 99990101000000, 'from the future', now())",
    )
    .execute(store.pool())
    .await
    .unwrap();
    drop(store);
    match PgStore::open(&url).await {
        Err(Error::DatabaseTooNew { found, known }) => {
            assert_eq!(found, 99990101000000);
            assert_eq!(known, migrations::CORE.latest());
        }
        other => panic!("expected DatabaseTooNew, got {other:?}"),
    }
    // The refused open released the migration lock: a good database still opens at once.
    tokio::time::timeout(Duration::from_secs(20), fresh_store())
        .await
        .expect("the migration lock was released");
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_and_the_password_is_not_shown() {
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    let err = PgStore::open("postgres://porter:s3cret-pw@127.0.0.1:1/porter")
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(!msg.contains("s3cret-pw"), "{msg}");
    assert!(msg.contains("127.0.0.1:1"), "{msg}");
}

#[tokio::test]
#[cfg_attr(
    not(porter_pg_tests),
    ignore = "set PORTER_TEST_DATABASE_URL (scripts/test does)"
)]
async fn insert_tx_jobs_exist_only_if_the_callers_transaction_commits() {
    let store = fresh_store().await;
    let mut tx = store.pool().begin().await.unwrap();
    let rolled_back = job_insert_tx(&mut tx, vec![job("k", InsertOpts::default())])
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(store.job_get(rolled_back[0].job.id).await.unwrap(), None);

    let mut tx = store.pool().begin().await.unwrap();
    let committed = job_insert_tx(&mut tx, vec![job("k", InsertOpts::default())])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let row = store
        .job_get(committed[0].job.id)
        .await
        .unwrap()
        .expect("committed job exists");
    assert_eq!(row.state, JobState::Available);
}

#[tokio::test]
#[cfg_attr(
    not(porter_pg_tests),
    ignore = "set PORTER_TEST_DATABASE_URL (scripts/test does)"
)]
async fn an_insert_in_one_process_wakes_the_queue_in_another() {
    let url = fresh_url().await;
    let (a, b) = (
        PgStore::open(&url).await.unwrap(),
        PgStore::open(&url).await.unwrap(),
    );
    let woken = b.wakeup().subscribe("mail");
    // Inserting through the caller's transaction: only the NOTIFY can wake `b`.
    let mut tx = a.pool().begin().await.unwrap();
    job_insert_tx(
        &mut tx,
        vec![job(
            "k",
            InsertOpts {
                queue: Some("mail".into()),
                ..Default::default()
            },
        )],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), woken.notified())
        .await
        .expect("woken through LISTEN/NOTIFY");
}

#[tokio::test]
#[cfg_attr(
    not(porter_pg_tests),
    ignore = "set PORTER_TEST_DATABASE_URL (scripts/test does)"
)]
async fn dropping_the_store_stops_listening() {
    let store = fresh_store().await;
    let wakeup = store.wakeup().clone();
    assert_eq!(
        Arc::strong_count(&wakeup),
        3,
        "the store, its LISTEN task and this test"
    );
    drop(store);
    let stopped = async {
        while Arc::strong_count(&wakeup) > 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), stopped)
        .await
        .expect("the LISTEN task ended");
}

#[tokio::test]
#[cfg_attr(
    not(porter_pg_tests),
    ignore = "set PORTER_TEST_DATABASE_URL (scripts/test does)"
)]
async fn a_batch_keeps_input_order_across_plain_and_keyed_jobs() {
    let store = fresh_store().await;
    let first = store.job_insert_many(vec![keyed("a")]).await.unwrap();
    let batch = vec![
        job("k", InsertOpts::default()),
        keyed("a"), // held by `first`
        keyed("b"),
        job("k", InsertOpts::default()),
        keyed("b"), // held by the row two above
        job(
            "k",
            InsertOpts {
                schedule_in: Some(Duration::from_secs(3600)),
                ..Default::default()
            },
        ),
    ];
    let out = store.job_insert_many(batch).await.unwrap();
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
    assert_eq!(
        store.job_counts().await.unwrap().total[&JobState::Available],
        4
    );
}

#[tokio::test]
#[cfg_attr(
    not(porter_pg_tests),
    ignore = "set PORTER_TEST_DATABASE_URL (scripts/test does)"
)]
async fn a_large_batch_inserts_in_one_go() {
    let store = fresh_store().await;
    let jobs = (0..20_000)
        .map(|_| job("k", InsertOpts::default()))
        .collect();
    let out = store.job_insert_many(jobs).await.unwrap();
    assert_eq!(out.len(), 20_000);
    assert!(out.windows(2).all(|w| w[0].job.id < w[1].job.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(porter_pg_tests),
    ignore = "set PORTER_TEST_DATABASE_URL (scripts/test does)"
)]
async fn concurrent_claims_take_each_job_once() {
    let url = fresh_url().await;
    let store = Arc::new(PgStore::open(&url).await.unwrap());
    store
        .job_insert_many((0..200).map(|_| job("k", InsertOpts::default())).collect())
        .await
        .unwrap();
    let claimers = (0..4).map(|w| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let params = JobClaimParams {
                    queue: "default".into(),
                    kinds: vec!["k".into()],
                    limit: 7,
                    worker_id: format!("w{w}"),
                };
                let got = store.job_claim(params).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|j| j.id));
            }
        })
    });
    let mut seen = HashSet::new();
    for ids in futures::future::join_all(claimers).await {
        for id in ids.unwrap() {
            assert!(seen.insert(id), "job {id} claimed twice");
        }
    }
    assert_eq!(seen.len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(porter_pg_tests),
    ignore = "set PORTER_TEST_DATABASE_URL (scripts/test does)"
)]
async fn concurrent_periodic_enqueues_give_one_job_per_slot() {
    let url = fresh_url().await;
    let stores: Vec<Arc<PgStore>> = futures::future::join_all((0..3).map(|_| PgStore::open(&url)))
        .await
        .into_iter()
        .map(|s| Arc::new(s.unwrap()))
        .collect();
    for slot in [1_000, 2_000, 3_000] {
        let calls = (0..12).map(|i| {
            let store = stores[i % stores.len()].clone();
            tokio::spawn(async move {
                store
                    .periodic_enqueue(PeriodicEnqueueParams {
                        name: "tick".into(),
                        slot,
                        insert_if_new: true,
                        job: job("tick", InsertOpts::default()),
                    })
                    .await
                    .unwrap()
            })
        });
        let got: Vec<_> = futures::future::join_all(calls)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(got.iter().filter(|r| r.is_some()).count(), 1, "slot {slot}");
    }
    assert_eq!(
        stores[0].job_counts().await.unwrap().total[&JobState::Available],
        3
    );
}

#[tokio::test]
#[cfg_attr(
    not(porter_pg_tests),
    ignore = "set PORTER_TEST_DATABASE_URL (scripts/test does)"
)]
async fn driver_errors_map_to_the_library_errors() {
    let store = fresh_store().await;
    let unique = sqlx::query("INSERT INTO porter_queues (name) VALUES ('q'), ('q')")
        .execute(store.pool())
        .await;
    assert!(matches!(map_err(unique.unwrap_err()), Error::Conflict(_)));
    let check = sqlx::query("INSERT INTO porter_jobs (kind, priority) VALUES ('k', 9)")
        .execute(store.pool())
        .await;
    assert!(matches!(map_err(check.unwrap_err()), Error::Invalid { .. }));
    let syntax = sqlx::query("SELEC 1").execute(store.pool()).await;
    assert!(matches!(map_err(syntax.unwrap_err()), Error::Database(_)));
    // close() marks the pool closed at once, then waits for connections to come back; the
    // store's LISTEN task keeps one, so do not wait for it.
    let _ = tokio::time::timeout(Duration::from_millis(200), store.pool().close()).await;
    let closed = sqlx::query("SELECT 1").execute(store.pool()).await;
    assert!(matches!(
        map_err(closed.unwrap_err()),
        Error::Unavailable(_)
    ));
}

#[tokio::test]
#[cfg_attr(
    not(porter_pg_tests),
    ignore = "set PORTER_TEST_DATABASE_URL (scripts/test does)"
)]
async fn retention_deletes_past_one_batch_up_to_the_limit() {
    let store = fresh_store().await;
    store
        .job_insert_many(
            (0..2_500)
                .map(|_| job("k", InsertOpts::default()))
                .collect(),
        )
        .await
        .unwrap();
    sqlx::query(
        "UPDATE porter_jobs SET state = 'completed', finalized_at = now() - interval '2 days'",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let day = Duration::from_secs(86_400);
    let params = JobDeleteFinalizedParams {
        completed: day,
        cancelled: day,
        discarded: day,
        limit: 2_200,
    };
    assert_eq!(
        store.job_delete_finalized(params.clone()).await.unwrap(),
        2_200
    );
    assert_eq!(
        store.job_delete_finalized(params.clone()).await.unwrap(),
        300
    );
    assert_eq!(store.job_delete_finalized(params).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(porter_pg_tests),
    ignore = "set PORTER_TEST_DATABASE_URL (scripts/test does)"
)]
async fn racing_inserts_of_one_unique_key_make_one_job() {
    let store = Arc::new(fresh_store().await);
    let inserts = (0..8).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .job_insert_many(vec![keyed("once")])
                .await
                .unwrap()
                .remove(0)
        })
    });
    let results: Vec<InsertResult> = futures::future::join_all(inserts)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(results.iter().filter(|r| r.inserted).count(), 1);
    let ids: HashSet<i64> = results.iter().map(|r| r.job.id).collect();
    assert_eq!(ids.len(), 1, "every caller got the one job");
}

#[tokio::test]
#[cfg_attr(
    not(porter_pg_tests),
    ignore = "set PORTER_TEST_DATABASE_URL (scripts/test does)"
)]
async fn a_key_held_by_an_insert_that_rolls_back_goes_to_the_next() {
    let store = fresh_store().await;
    let mut holder = store.pool().begin().await.unwrap();
    job_insert_tx(&mut holder, vec![keyed("k1")]).await.unwrap();
    // The second insert waits on the holder's row; the holder rolls back, so it inserts.
    let second = {
        let pool = store.pool().clone();
        tokio::spawn(async move {
            let mut tx = pool.begin().await.unwrap();
            let r = job_insert_tx(&mut tx, vec![keyed("k1")])
                .await
                .unwrap()
                .remove(0);
            tx.commit().await.unwrap();
            r
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    holder.rollback().await.unwrap();
    let r = second.await.unwrap();
    assert!(r.inserted);
    assert_eq!(
        store
            .job_get(r.job.id)
            .await
            .unwrap()
            .unwrap()
            .unique_key
            .as_deref(),
        Some("k1")
    );
}

/// Issue 11.4: a retry committed between retention's choice of rows and its delete must win.
/// The test holds the retry's transaction open (its row lock) while retention runs, so the
/// delete has already chosen the row from its snapshot and waits on the lock; then the retry
/// commits and the delete re-reads the row, which is `available` now and must stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(porter_pg_tests),
    ignore = "set PORTER_TEST_DATABASE_URL (scripts/test does)"
)]
async fn retention_never_deletes_a_job_retried_while_it_runs() {
    let store = Arc::new(fresh_store().await);
    let id = store
        .job_insert_many(vec![job("k", InsertOpts::default())])
        .await
        .unwrap()[0]
        .job
        .id;
    sqlx::query("UPDATE porter_jobs SET state = 'completed', finalized_at = now() - interval '2 days' WHERE id = $1")
        .bind(id)
        .execute(store.pool())
        .await
        .unwrap();

    let mut retry = store.pool().begin().await.unwrap();
    let retry_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *retry)
        .await
        .unwrap();
    let retried = sqlx::query(sql!("job_retry"))
        .bind(id)
        .execute(&mut *retry)
        .await
        .unwrap();
    assert_eq!(retried.rows_affected(), 1);

    let day = Duration::from_secs(86_400);
    let params = JobDeleteFinalizedParams {
        completed: day,
        cancelled: day,
        discarded: day,
        limit: 100,
    };
    let retention = {
        let store = store.clone();
        tokio::spawn(async move { store.job_delete_finalized(params).await })
    };
    // Wait until retention is blocked on the retry's row lock (or, with SKIP LOCKED, done).
    let blocked = async {
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
            )
            .bind(retry_pid)
            .fetch_one(store.pool())
            .await
            .unwrap();
            if waiting > 0 || retention.is_finished() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), blocked)
        .await
        .expect("retention reached the locked row");
    retry.commit().await.unwrap();

    let deleted = retention.await.unwrap().unwrap();
    assert_eq!(deleted, 0, "the retried job is not finished any more");
    let row = store
        .job_get(id)
        .await
        .unwrap()
        .expect("the retried job survives retention");
    assert_eq!(row.state, JobState::Available);
}
