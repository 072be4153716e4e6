//! Multi-row writes beside each other, both of which must succeed. On PostgreSQL two
//! transactions that lock shared rows in different orders end with "deadlock detected"
//! (40P01), an error from the store; every path that locks several jobs takes them in id
//! order. Each case makes the meeting certain rather than likely: a third transaction holds
//! one of the shared rows while the first write and then the second queue up behind it, each
//! having locked what it locks before that row, and lets go. SQLite's one writer cannot
//! deadlock (nothing is held there): the cases pin the same end states.

use std::sync::Arc;
use std::time::Duration;

use porter::job::{InsertOpts, JobState};
use porter::store::*;
use porter::workflow::{Step, Workflow};
use porter::{Client, JobRow};

use super::deps::{after, get};
use super::*;

fn in_q(q: &str, p: JobInsertParams) -> JobInsertParams {
    JobInsertParams {
        queue: q.into(),
        ..p
    }
}

fn queue(q: &str) -> JobFilter {
    JobFilter {
        queue: Some(q.into()),
        ..Default::default()
    }
}

fn kind(k: &str) -> JobFilter {
    JobFilter {
        kind: Some(k.into()),
        ..Default::default()
    }
}

/// A transaction of its own holding job rows locked (PostgreSQL; nothing on SQLite).
struct Hold {
    conn: Option<(sqlx::PgConnection, i32)>,
}

impl Hold {
    async fn rows(db: &TestDb, ids: &[i64]) -> Hold {
        use sqlx::Connection;
        if db.sqlite_path().is_some() {
            return Hold { conn: None };
        }
        let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::query("BEGIN").execute(&mut c).await.unwrap();
        let locked =
            sqlx::query("SELECT id FROM porter_jobs WHERE id = ANY($1) ORDER BY id FOR UPDATE")
                .bind(ids)
                .fetch_all(&mut c)
                .await
                .unwrap();
        assert_eq!(locked.len(), ids.len());
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut c)
            .await
            .unwrap();
        Hold {
            conn: Some((c, pid)),
        }
    }

    /// Returns once `n` sessions wait behind this one (directly, or behind one that does).
    async fn queued(&mut self, n: i64) {
        let Some((c, pid)) = &mut self.conn else {
            return;
        };
        loop {
            // (The activity a transaction reads is kept for the transaction, unless cleared.)
            sqlx::query("SELECT pg_stat_clear_snapshot()")
                .execute(&mut *c)
                .await
                .unwrap();
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity a WHERE $1 = ANY(pg_blocking_pids(a.pid)) \
                 OR EXISTS (SELECT 1 FROM unnest(pg_blocking_pids(a.pid)) b(pid) \
                            WHERE $1 = ANY(pg_blocking_pids(b.pid)))",
            )
            .bind(*pid)
            .fetch_one(&mut *c)
            .await
            .unwrap();
            if waiting >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    async fn release(self) {
        if let Some((mut c, _)) = self.conn {
            sqlx::query("COMMIT").execute(&mut c).await.unwrap();
        }
    }
}

/// `first` started, then `second` once `first` waits behind `hold`; both once the second
/// waits too and `hold` lets go. (On SQLite, one after the other.)
async fn meet<A, B>(
    mut hold: Hold,
    first: impl std::future::Future<Output = A> + Send + 'static,
    second: impl std::future::Future<Output = B> + Send + 'static,
) -> (A, B)
where
    A: Send + 'static,
    B: Send + 'static,
{
    if hold.conn.is_none() {
        // SQLite: one after the other, as PostgreSQL's locks order them.
        let a = first.await;
        return (a, second.await);
    }
    let first = tokio::spawn(first);
    hold.queued(1).await;
    let second = tokio::spawn(second);
    hold.queued(2).await;
    hold.release().await;
    (first.await.unwrap(), second.await.unwrap())
}

/// Jobs a and b of queue `q`, run and failed (retryable) b first: b's new row lies before
/// a's in the table, the order a scan of the table meets them in.
async fn retryable_pair(s: &Store, q: &str) -> (i64, i64) {
    let a = insert(s, in_q(q, job("p"))).await;
    let b = insert(s, in_q(q, job("p"))).await;
    let got = s.job_claim(claim(q, &["p"], 2, W)).await.unwrap();
    assert_eq!(
        got.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![a.id, b.id]
    );
    for row in got.iter().rev() {
        s.job_fail(fail(row, "x", Duration::from_secs(3600)))
            .await
            .unwrap();
    }
    (a.id, b.id)
}

fn bulk(
    s: &Arc<Store>,
    action: BulkAction,
    f: JobFilter,
) -> impl std::future::Future<Output = porter::Result<BulkOutcome>> + Send + 'static {
    let s = s.clone();
    async move {
        s.job_bulk(action, f, i64::MAX)
            .await
            .map_err(porter::Error::from)
    }
}

backend_case! {
    /// A bulk retry beside a bulk cancel of the same retryable jobs a and b, b's row before
    /// a's in the table: the retry's scan took b, then waited for a, which the cancel (in id
    /// order) held while it waited for b.
    async fn a_bulk_retry_beside_a_bulk_cancel_of_the_same_jobs_does_not_deadlock(db: TestDb) {
        let s = &db.store;
        let (a, b) = retryable_pair(s, "q").await;
        let hold = Hold::rows(&db, &[b]).await;
        let (retry, cancel) = meet(
            hold,
            bulk(s, BulkAction::Retry, queue("q")),
            bulk(&db.reopen().await, BulkAction::Cancel, queue("q")),
        )
        .await;
        assert_eq!(retry.unwrap().changed, 2, "retried");
        assert_eq!(cancel.unwrap().changed, 2, "cancelled after");
        for id in [a, b] {
            assert_eq!(get(s, id).await.state, JobState::Cancelled, "job {id}");
        }
    }
}

backend_case! {
    /// The same with a bulk delete, which locks its rows in id order before deleting them.
    async fn a_bulk_retry_beside_a_bulk_delete_of_the_same_jobs_does_not_deadlock(db: TestDb) {
        let s = &db.store;
        let (a, b) = retryable_pair(s, "q").await;
        let hold = Hold::rows(&db, &[b]).await;
        let (retry, delete) = meet(
            hold,
            bulk(s, BulkAction::Retry, queue("q")),
            bulk(&db.reopen().await, BulkAction::Delete, queue("q")),
        )
        .await;
        assert_eq!(retry.unwrap().changed, 2, "retried");
        assert_eq!(delete.unwrap().changed, 2, "deleted after");
        for id in [a, b] {
            assert!(s.job_get(id).await.unwrap().is_none(), "job {id}");
        }
    }
}

backend_case! {
    /// A bulk retry of a completed parent a and of a retryable r, beside a bulk cancel of c
    /// (a's waiting child, older than r) and r. The retry's trigger counts a again for c after
    /// the retry took r; the cancel took c, then waited for r.
    async fn a_bulk_retry_of_a_parent_beside_a_bulk_cancel_of_its_child_does_not_deadlock(db: TestDb) {
        let s = &db.store;
        let a = insert(s, job("kr")).await;
        let b = insert(s, job("hold")).await;
        let c = insert(s, in_q("qc", after("c", &[a.id, b.id]))).await;
        let r = insert(s, in_q("qc", job("kr"))).await;
        let ra = claim_one(s, "kr").await;
        assert_eq!(ra.id, a.id);
        s.job_complete_many(vec![ra.fence()]).await.unwrap();
        let rr = s.job_claim(claim("qc", &["kr"], 1, W)).await.unwrap().remove(0);
        s.job_fail(fail(&rr, "x", Duration::from_secs(3600))).await.unwrap();
        let hold = Hold::rows(&db, &[r.id]).await;
        let (retry, cancel) = meet(
            hold,
            bulk(s, BulkAction::Retry, kind("kr")),
            bulk(&db.reopen().await, BulkAction::Cancel, queue("qc")),
        )
        .await;
        assert_eq!(retry.unwrap().changed, 2, "retried");
        assert_eq!(cancel.unwrap().changed, 2, "cancelled after");
        assert_eq!(get(s, a.id).await.state, JobState::Available, "a");
        assert_eq!(get(s, c.id).await.state, JobState::Cancelled, "c");
        assert_eq!(get(s, r.id).await.state, JobState::Cancelled, "r");
    }
}

/// p, c waiting for p, and r, in id order; p and r running. Queue "qc" holds c and r.
async fn parent_child_and_younger_running(s: &Store) -> (JobRow, i64, JobRow) {
    let p = insert(s, job("kp")).await;
    let c = insert(s, in_q("qc", after("c", &[p.id]))).await;
    let r = insert(s, in_q("qc", job("kp"))).await;
    let rp = claim_one(s, "kp").await;
    assert_eq!(rp.id, p.id);
    let rr = s
        .job_claim(claim("qc", &["kp"], 1, W))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(rr.id, r.id);
    (rp, c.id, rr)
}

/// The end both orders of "complete p and r" and "cancel c and r" reach: p and r completed
/// (a cancel of a running job only asks it to stop), c cancelled (before or after p freed it).
async fn completed_beside_cancelled(
    s: &Store,
    (p, c, r): (i64, i64, i64),
    completed: porter::Result<Vec<bool>>,
    cancelled: u64,
) {
    assert_eq!(
        completed.expect("the completion is written"),
        vec![true, true]
    );
    assert!(
        matches!(cancelled, 1 | 2),
        "c, and r's request unless r completed first: {cancelled}"
    );
    assert_eq!(get(s, p).await.state, JobState::Completed, "p");
    assert_eq!(get(s, c).await.state, JobState::Cancelled, "c");
    assert_eq!(get(s, r).await.state, JobState::Completed, "r");
}

/// A store of the same database whose sessions wait 10 s before they look for a deadlock
/// (PostgreSQL's `deadlock_timeout`, 1 s by default): beside a default session, the default
/// one looks first, finds the cycle and is the one aborted. Setting it takes a role that may
/// (the test cluster's owner, as the test script makes it). (On SQLite, the same store.)
async fn patient(db: &TestDb) -> Arc<Store> {
    if db.sqlite_path().is_some() {
        return db.store.clone();
    }
    let sep = if db.url.contains('?') { '&' } else { '?' };
    porter::store::open(&format!("{}{sep}options[deadlock_timeout]=10s", db.url))
        .await
        .unwrap()
}

/// The completion of a parent p and of a younger running job r, beside a bulk cancel of c
/// (p's waiting child, older than r) and r. The completion takes p and r, and then its count of
/// p's end wants c; the cancel took c, then waited for r. The two orders cannot both be kept
/// without the completion finding its jobs' children first (which would slow every
/// completion), so the one PostgreSQL picks as the deadlock's victim is run again; the
/// other side's store is `patient`, so the victim is the one named.
async fn completion_beside_bulk_cancel(db: &TestDb, victim: &str) {
    let s = &db.store;
    let (p, c, r) = parent_child_and_younger_running(s).await;
    let (completer, canceller) = match victim {
        "completion" => (db.reopen().await, patient(db).await),
        _ => (patient(db).await, db.reopen().await),
    };
    let hold = Hold::rows(db, &[r.id]).await;
    let fences = vec![p.fence(), r.fence()];
    let (completed, cancel) = meet(
        hold,
        async move { completer.job_complete_many(fences).await },
        bulk(&canceller, BulkAction::Cancel, queue("qc")),
    )
    .await;
    let cancelled = cancel.expect("the cancel is written").changed;
    completed_beside_cancelled(s, (p.id, c, r.id), completed, cancelled).await;
}

backend_case! {
    /// [`completion_beside_bulk_cancel`], the cancel aborted and run again: it finds r
    /// completed and cancels c alone.
    async fn a_bulk_cancel_that_loses_a_deadlock_to_a_completion_is_run_again(db: TestDb) {
        completion_beside_bulk_cancel(&db, "cancel").await;
    }
}

backend_case! {
    /// [`completion_beside_bulk_cancel`], the completion aborted and run again: it completes
    /// p and r (r only asked to stop) after the cancel took c.
    async fn a_completion_that_loses_a_deadlock_to_a_bulk_cancel_is_run_again(db: TestDb) {
        completion_beside_bulk_cancel(&db, "completion").await;
    }
}

backend_case! {
    /// The same with a workflow's cancel, which locks its steps as a bulk cancel does: c and
    /// r are its steps, c waits for p outside it (a cancel of a workflow takes all its steps,
    /// so a parent inside it would be taken first, as the completion takes it). The completer
    /// is `patient`: the cancel is the one aborted and run again.
    async fn a_completion_beside_a_workflow_cancel_of_a_child_and_a_younger_running_step_both_succeed(db: TestDb) {
        let s = &db.store;
        let p = insert(s, job("kp")).await;
        let outside = InsertOpts {
            depends_on: vec![p.id],
            ..Default::default()
        };
        let client = Client::new(s.clone());
        let wf = client
            .insert_workflow(
                Workflow::new("w")
                    .step(Step::raw("c", "c", serde_json::json!({})).opts(outside))
                    .step(Step::raw("r", "kp", serde_json::json!({}))),
            )
            .await
            .unwrap();
        let (c, r) = (wf.job("c").unwrap().id, wf.job("r").unwrap().id);
        assert!(p.id < c && c < r, "p, c, r in id order");
        let mut got = s.job_claim(claim("default", &["kp"], 2, W)).await.unwrap();
        assert_eq!(got.iter().map(|j| j.id).collect::<Vec<_>>(), vec![p.id, r]);
        let (rr, rp) = (got.remove(1), got.remove(0));
        let hold = Hold::rows(&db, &[r]).await;
        let completer = patient(&db).await;
        let fences = vec![rp.fence(), rr.fence()];
        let other = Client::new(db.reopen().await);
        let (completed, cancel) = meet(
            hold,
            async move { completer.job_complete_many(fences).await },
            async move { other.cancel_workflow(wf.id).await },
        )
        .await;
        let cancel = cancel.expect("the cancel is written");
        let cancelled = cancel.cancelled + cancel.cancel_requested;
        completed_beside_cancelled(s, (p.id, c, r), completed, cancelled).await;
    }
}

/// A batch of one member keyed `member` (and `plain` members without keys) whose callback is
/// keyed `callback`.
fn crossing_batch(member: &str, callback: &str, plain: usize) -> porter::batch::Batch {
    let keyed = |key: &str| InsertOpts {
        unique_key: Some(key.into()),
        ..Default::default()
    };
    let mut b = porter::batch::Batch::new();
    b.push_params(job_with("m", keyed(member)));
    for _ in 0..plain {
        b.push_params(job("m"));
    }
    b.callback_raw("cb", serde_json::json!({}), keyed(callback), false)
}

backend_case! {
    /// Two batches whose unique keys cross (one's member key is the other's callback's) wait
    /// for each other instead of deadlocking: a batch locks every key it inserts, its
    /// callback's with its members', before writing any row (job_unique_lock.sql). Review of 6
    /// Dec: the callback's key was left out, so with one member key nothing was locked, and
    /// batch X (member a, callback b) beside batch Y (member b, callback a) each inserted its
    /// member and waited at its callback for the other's, until PostgreSQL ended one with
    /// "deadlock detected" (a database error, where the later batch is to be refused naming the
    /// key's holder). Here a third transaction first holds the lock of a callback's key: the
    /// batch waits for it before inserting anything; then crossing pairs race, and in each
    /// round one is inserted and the other refused as a conflict. (SQLite's one writer takes
    /// them in turn.)
    async fn batches_whose_unique_keys_cross_wait_instead_of_deadlocking(db: TestDb) {
        let s = db.store.clone();
        if db.sqlite_path().is_none() {
            use sqlx::Connection;
            let mut holder = sqlx::PgConnection::connect(&db.url).await.unwrap();
            let pid = crate::common::pg_pid(&mut holder).await;
            sqlx::raw_sql("BEGIN; SELECT pg_advisory_xact_lock(1886350451, hashtext('held'))")
                .execute(&mut holder)
                .await
                .unwrap();
            let client = Client::new(s.clone());
            let inserting = tokio::spawn(async move { client.insert_batch(crossing_batch("free", "held", 0)).await });
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            loop {
                assert!(!inserting.is_finished(), "the batch went past the lock of its callback's key");
                let waiting: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                )
                .bind(pid)
                .fetch_one(&mut holder)
                .await
                .unwrap();
                if waiting > 0 {
                    break;
                }
                assert!(tokio::time::Instant::now() < deadline, "the batch never waited");
                sqlx::query("SELECT pg_stat_clear_snapshot()").execute(&mut holder).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert_eq!(total(&s).await, 0, "nothing written while it waits");
            sqlx::raw_sql("COMMIT").execute(&mut holder).await.unwrap();
            inserting.await.unwrap().expect("inserted once the lock is free");
        }
        let other = db.reopen().await;
        for round in 0..10 {
            let (a, b) = (format!("a{round}"), format!("b{round}"));
            let x = Client::new(s.clone());
            let y = Client::new(other.clone());
            let (bx, by) = (crossing_batch(&a, &b, 300), crossing_batch(&b, &a, 300));
            let (x, y) = tokio::join!(
                tokio::spawn(async move { x.insert_batch(bx).await }),
                tokio::spawn(async move { y.insert_batch(by).await }),
            );
            let outcomes = [x.unwrap(), y.unwrap()];
            let inserted = outcomes.iter().filter(|o| o.is_ok()).count();
            for o in &outcomes {
                if let Err(e) = o {
                    assert!(matches!(e, porter::Error::Conflict(_)), "round {round}: {e}");
                }
            }
            assert_eq!(inserted, 1, "round {round}: {outcomes:?}");
        }
    }
}
