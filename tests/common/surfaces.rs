//! Setup shared by the surface tests (`http`, `cli`, `dashboard`): jobs put in a chosen state
//! through the store, snapshots to prove a request changed nothing, and the app under test.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use porter::http::{AppState, HttpConfig};
use porter::runtime::{RunReport, Runtime, RuntimeConfig, Shutdown};
use porter::store::{
    JobClaimParams, JobFailParams, JobInsertParams, JobListParams, MAX_LIST_LIMIT,
};
use porter::{Backend, InsertOpts, JobRow, Store};

/// The worker id the helpers claim jobs as.
pub const TEST_WORKER: &str = "surfaces-test-worker";

/// Inserts one job.
pub async fn insert(store: &Store, kind: &str, queue: &str) -> JobRow {
    let opts = InsertOpts {
        queue: Some(queue.to_string()),
        ..Default::default()
    };
    let params = JobInsertParams::new(kind, serde_json::json!({}), opts).unwrap();
    store
        .job_insert_many(vec![params])
        .await
        .unwrap()
        .remove(0)
        .job
}

/// Claims the one available job of `kind` in `queue`: it becomes `running`.
pub async fn claim(store: &Store, kind: &str, queue: &str) -> JobRow {
    let mut got = store
        .job_claim(JobClaimParams {
            queue: queue.to_string(),
            kinds: vec![kind.to_string()],
            limit: 1,
            worker_id: TEST_WORKER.to_string(),
        })
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "one {kind} job to claim in {queue}");
    got.remove(0)
}

/// A `running` job (kind `noop`, queue `held`, which no test worker works).
pub async fn running_job(store: &Store) -> JobRow {
    insert(store, "noop", "held").await;
    claim(store, "noop", "held").await
}

/// A `discarded` job (kind `fail`, queue `default`) whose last error is `error`.
pub async fn discarded_job(store: &Store, error: &str) -> JobRow {
    insert(store, "fail", "default").await;
    let row = claim(store, "fail", "default").await;
    let job = store
        .job_fail(JobFailParams {
            fence: row.fence(),
            error: error.to_string(),
            trace: None,
            retry_in: Duration::ZERO,
            discard: true,
        })
        .await
        .unwrap();
    assert_eq!(job.state, porter::JobState::Discarded);
    job
}

/// Every job, newest first.
pub async fn all_jobs(store: &Store) -> Vec<JobRow> {
    store
        .job_list(JobListParams {
            limit: Some(MAX_LIST_LIMIT),
            ..Default::default()
        })
        .await
        .unwrap()
}

/// App state on this store and a fresh in-memory object store, with the tablo app's tables
/// migrated (as `porter web` does).
pub async fn app_state(store: Arc<Store>, config: HttpConfig) -> AppState {
    porter::app::store::migrate(store.as_ref())
        .await
        .expect("migrate the tablo app's tables");
    let objects: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    AppState::with_config(store, objects, config)
}

/// A worker running the built-in workers (no periodic jobs), until the returned shutdown.
pub fn spawn_worker(
    store: Arc<Store>,
    objects: Arc<dyn ObjectStore>,
) -> (Shutdown, tokio::task::JoinHandle<porter::Result<RunReport>>) {
    let workers = porter::app::builtin::builtin_workers(
        store.clone(),
        objects,
        std::time::Duration::from_secs(3600),
    )
    .unwrap();
    let config = RuntimeConfig {
        periodic: Vec::new(),
        ..RuntimeConfig::default()
    };
    let shutdown = Shutdown::new();
    let handle = tokio::spawn(Runtime::new(store, workers, config).run(shutdown.clone()));
    (shutdown, handle)
}

/// Makes every insert of an `orphan_file_cleanup` job fail inside the database (a trigger),
/// so the transaction that tries it must roll back.
pub async fn refuse_cleanup_jobs(
    url: &str,
    store: &Store,
    sqlite_path: Option<std::path::PathBuf>,
) {
    match store.backend() {
        Backend::Sqlite => {
            let conn = rusqlite::Connection::open(sqlite_path.expect("a SQLite file")).unwrap();
            conn.execute_batch(
                "CREATE TRIGGER refuse_cleanup BEFORE INSERT ON porter_jobs
                 WHEN NEW.kind = 'orphan_file_cleanup'
                 BEGIN SELECT RAISE(ABORT, 'cleanup job refused by the test trigger'); END;",
            )
            .unwrap();
        }
        Backend::Postgres => {
            #[cfg(feature = "postgres")]
            {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                sqlx::raw_sql(
                    "CREATE FUNCTION refuse_cleanup() RETURNS trigger LANGUAGE plpgsql AS $$
                     BEGIN RAISE EXCEPTION 'cleanup job refused by the test trigger'; END $$;
                     CREATE TRIGGER refuse_cleanup BEFORE INSERT ON porter_jobs FOR EACH ROW
                     WHEN (NEW.kind = 'orphan_file_cleanup') EXECUTE FUNCTION refuse_cleanup();",
                )
                .execute(&pool)
                .await
                .unwrap();
                pool.close().await;
            }
            #[cfg(not(feature = "postgres"))]
            let _ = url;
        }
    }
}

/// Registers a live worker (a lease of an hour: it stays live for the whole test) that serves
/// these queues and kinds, as a running `porter worker` does.
pub async fn serving_worker(store: &Store, id: &str, queues: &[&str], kinds: &[&str]) {
    store
        .worker_register(porter::store::WorkerRegisterParams {
            id: id.to_string(),
            host: "box".to_string(),
            pid: 1,
            lease: std::time::Duration::from_secs(3600),
            stuck_after: Vec::new(),
            queues: queues.iter().map(|q| q.to_string()).collect(),
            kinds: kinds.iter().map(|k| k.to_string()).collect(),
            unsteady: false,
            since_last: None,
        })
        .await
        .expect("register a worker");
}
