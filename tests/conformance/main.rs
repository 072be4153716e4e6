//! The conformance suite: every queue behaviour of the Store seam, written once and run on
//! SQLite (always) and on PostgreSQL (when PORTER_TEST_DATABASE_URL is set), each case on its
//! own fresh database. One file per area; each case is defined once with `backend_case!`,
//! which generates its `CASE::sqlite` and `CASE::postgres` tests from the definition.

#[path = "../common/chaos_gated_store.rs"]
mod chaos_gated_store;
#[path = "../common/mod.rs"]
mod common;

mod admin;
mod batches;
mod cancel;
mod claim;
mod clock;
mod complete_fail;
mod cross_backend;
mod deps;
mod insert;
mod limits;
mod list;
mod lock_order;
mod output;
mod periodic;
mod queues;
mod rescue;
mod retention;
mod schema;
mod sequence;
mod unserved;
mod workers;
mod workflows;

use std::time::Duration;

use porter::job::InsertOpts;
use porter::store::*;

use crate::common::{raw_exec, TestDb};

const W: &str = "worker-a";

fn job(kind: &str) -> JobInsertParams {
    JobInsertParams::new(kind, serde_json::json!({"n": 1}), InsertOpts::default()).unwrap()
}

fn job_with(kind: &str, opts: InsertOpts) -> JobInsertParams {
    JobInsertParams::new(kind, serde_json::json!({}), opts).unwrap()
}

async fn insert(s: &Store, p: JobInsertParams) -> porter::JobRow {
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

async fn claim_one(s: &Store, kind: &str) -> porter::JobRow {
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

async fn total(s: &Store) -> i64 {
    s.job_counts().await.unwrap().total.values().sum()
}

fn register(id: &str, lease: Duration, stuck_after: &[(&str, Duration)]) -> WorkerRegisterParams {
    WorkerRegisterParams {
        id: id.into(),
        host: "host".into(),
        pid: 1,
        lease,
        stuck_after: stuck_after
            .iter()
            .map(|(k, d)| (k.to_string(), *d))
            .collect(),
        queues: Vec::new(),
        kinds: Vec::new(),
        unsteady: false,
        since_last: None,
    }
}

/// Gives back a job claimed ahead, before its handler ran.
async fn give_back_unstarted(s: &Store, row: &porter::JobRow) -> porter::JobRow {
    s.job_release(porter::store::JobReleaseParams {
        fence: row.fence(),
        reason: porter::runtime::GIVEN_BACK.into(),
        started: false,
    })
    .await
    .unwrap()
}

/// A clocked store on the test database, its clock a year ahead (to the millisecond).
async fn clocked(db: &TestDb) -> (std::sync::Arc<Store>, porter::store::clock::Clock) {
    let clock = porter::store::clock::Clock::new();
    let s = porter::store::open_with_clock(&db.url, clock.clone())
        .await
        .unwrap();
    let real = db.store.now().await.unwrap();
    clock.set(
        chrono::DateTime::from_timestamp_millis(real.timestamp_millis()).unwrap()
            + chrono::Duration::days(365),
    );
    (s, clock)
}
