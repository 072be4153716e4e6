//! Setup for the file tests: one database (from `common`) and one object store per test, and
//! the small steps the tests are made of (a tablo with files, an orphaned tablo, a raw orphan
//! row, does this object exist).
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::ObjectStore;
use porter::app::files::{save_tablo_file, CleanupConfig};
use porter::app::orphan_file_cleanup::{OrphanFileCleanup, OrphanFileCleanupWorker};
use porter::app::store::{TabloFileOrphansParams, TabloFileRow, TabloStore};
use porter::store::{JobClaimParams, JobFailParams, JobInsertParams, Store};
use porter::{InsertOpts, Job, JobArgs, JobError, JobRow};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::common::TestDb;

/// Which object store a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objects {
    Memory,
    File,
    S3,
}

/// The S3-compatible test server that `scripts/test` (or the developer) started:
/// (endpoint, bucket). Only the S3 cases call it, and build.rs lets them run only when it is
/// named (or under CI), so its absence fails them.
pub fn s3_server() -> (String, String) {
    let endpoint = crate::common::server("PORTER_TEST_S3_ENDPOINT", "an S3-compatible server");
    let bucket = std::env::var("PORTER_TEST_S3_BUCKET")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "porter-test".into());
    (endpoint, bucket)
}

/// One test's database and object store.
pub struct Fixture {
    pub db: TestDb,
    pub store: Arc<Store>,
    /// The tablo app's tables in the same database.
    pub tablos: Arc<dyn TabloStore>,
    pub objects: Arc<dyn ObjectStore>,
    pub kind: Objects,
    /// A URL (and extra environment) that opens the same objects from another process;
    /// `None` for memory://.
    pub objects_url: Option<String>,
    pub objects_env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// The store for `kind` beside `db`.
    pub async fn new(db: TestDb, kind: Objects) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let (objects, objects_url, objects_env): (Arc<dyn ObjectStore>, _, _) = match kind {
            Objects::Memory => (
                porter::app::files::object_store_from_url("memory://").unwrap(),
                None,
                vec![],
            ),
            Objects::File => {
                // A directory that does not exist yet: opening the store creates it.
                let url = format!("file://{}/objects", dir.path().display());
                (
                    porter::app::files::object_store_from_url(&url).unwrap(),
                    Some(url),
                    vec![],
                )
            }
            Objects::S3 => {
                let (endpoint, bucket) = s3_server();
                // Keys and region come from AWS_* as scripts/test exports them.
                let s3 = AmazonS3Builder::from_env()
                    .with_endpoint(&endpoint)
                    .with_bucket_name(&bucket)
                    .with_allow_http(true)
                    .build()
                    .expect("S3 client for the test server");
                (
                    Arc::new(s3),
                    Some(format!("s3://{bucket}")),
                    vec![("S3_ENDPOINT".to_string(), endpoint)],
                )
            }
        };
        let store = db.store.clone();
        Fixture {
            tablos: porter::app::store::open(store.clone()).await.unwrap(),
            db,
            store,
            objects,
            kind,
            objects_url,
            objects_env,
            _dir: dir,
        }
    }

    /// A cleanup config with small pages, so that every test crosses page boundaries.
    pub fn config(&self) -> CleanupConfig {
        CleanupConfig {
            page_size: 3,
            ..CleanupConfig::default()
        }
    }

    /// The worker that runs `orphan_file_cleanup` jobs over this fixture.
    pub fn worker(&self, objects: Arc<dyn ObjectStore>) -> OrphanFileCleanupWorker {
        OrphanFileCleanupWorker {
            store: self.tablos.clone(),
            objects,
            config: self.config(),
            retry_at_most: std::time::Duration::from_secs(3600),
        }
    }

    /// A tablo with `n` files, stored the way the web upload stores them.
    pub async fn tablo_with_files(&self, n: usize) -> (Uuid, Vec<TabloFileRow>) {
        let tablo = self.tablos.tablo_insert("files test").await.unwrap();
        let mut files = Vec::new();
        for i in 0..n {
            let body = Bytes::from(format!("file {i} of tablo {}", tablo.id));
            files.push(
                save_tablo_file(
                    self.tablos.as_ref(),
                    self.objects.as_ref(),
                    tablo.id,
                    &format!("f{i}.txt"),
                    body,
                )
                .await
                .unwrap(),
            );
        }
        (tablo.id, files)
    }

    /// A tablo with `n` files, deleted the way the web deletes it: the row goes and its
    /// targeted cleanup job is inserted in one transaction. Returns the job too.
    pub async fn orphaned_tablo(&self, n: usize) -> (Uuid, Vec<TabloFileRow>, JobRow) {
        let (id, files) = self.tablo_with_files(n).await;
        let inserted = self
            .tablos
            .tablo_delete_enqueue(id)
            .await
            .unwrap()
            .expect("the tablo existed");
        (id, files, inserted.job)
    }

    /// A general (untargeted) cleanup job.
    pub async fn cleanup_job(&self) -> JobRow {
        let job = JobInsertParams::new(
            OrphanFileCleanup::KIND,
            serde_json::json!({}),
            InsertOpts::default(),
        )
        .unwrap();
        self.store
            .job_insert_many(vec![job])
            .await
            .unwrap()
            .pop()
            .unwrap()
            .job
    }

    /// A `tablo_files` row with any key, whose tablo never existed (so an orphan).
    pub async fn orphan_row(&self, key: &str) -> TabloFileRow {
        let row = TabloFileRow {
            id: Uuid::new_v4(),
            tablo_id: Uuid::new_v4(),
            s3_key: key.to_string(),
            size: 0,
            created_at: self.store.now().await.unwrap(),
        };
        self.tablos.tablo_file_insert(row.clone()).await.unwrap();
        row
    }

    /// Stores an object directly.
    pub async fn put(&self, key: &str) {
        self.objects
            .put(&Path::from(key), Bytes::from_static(b"canary").into())
            .await
            .unwrap();
    }

    /// Whether an object exists.
    pub async fn exists(&self, key: &str) -> bool {
        match self.objects.head(&Path::from(key)).await {
            Ok(_) => true,
            Err(object_store::Error::NotFound { .. }) => false,
            Err(e) => panic!("head {key}: {e}"),
        }
    }

    /// No orphan row is left, and none of these files' objects.
    pub async fn assert_cleaned(&self, files: &[TabloFileRow]) {
        assert!(self.orphans().await.is_empty(), "no orphan row is left");
        for f in files {
            assert!(
                !self.exists(&f.s3_key).await,
                "orphan object {} is gone",
                f.s3_key
            );
        }
    }

    /// A live tablo still has exactly these files, rows and objects.
    pub async fn assert_live(&self, tablo: Uuid, files: &[TabloFileRow]) {
        let rows = self.tablos.tablo_file_list(tablo).await.unwrap();
        let ids = |rows: &[TabloFileRow]| {
            rows.iter()
                .map(|r| (r.id, r.s3_key.clone()))
                .collect::<std::collections::BTreeSet<_>>()
        };
        assert_eq!(ids(&rows), ids(files), "live tablo {tablo} keeps its rows");
        for f in files {
            assert!(
                self.exists(&f.s3_key).await,
                "live object {} stays",
                f.s3_key
            );
        }
    }

    /// Every orphan row left, in id order.
    pub async fn orphans(&self) -> Vec<TabloFileRow> {
        let mut out = Vec::new();
        loop {
            let page = self
                .tablos
                .tablo_file_orphans(TabloFileOrphansParams {
                    after: out.last().map(|r: &TabloFileRow| r.id),
                    tablo_id: None,
                    limit: 500,
                })
                .await
                .unwrap();
            if page.is_empty() {
                return out;
            }
            out.extend(page);
        }
    }

    /// Claims the job with this id (it must be due) for a test worker.
    pub async fn claim(&self, id: i64) -> JobRow {
        let claimed = self
            .store
            .job_claim(JobClaimParams {
                queue: "default".into(),
                kinds: vec![OrphanFileCleanup::KIND.into()],
                limit: 100,
                worker_id: "files-test".into(),
            })
            .await
            .unwrap();
        claimed
            .into_iter()
            .find(|r| r.id == id)
            .expect("the cleanup job was claimable")
    }

    /// Claims a cleanup job and runs it on `worker` as the executor would, then records the
    /// outcome. Returns the worker's result and the job row afterwards.
    pub async fn run_job(
        &self,
        worker: &OrphanFileCleanupWorker,
        id: i64,
    ) -> (Result<(), String>, JobRow) {
        use porter::Worker;
        let row = self.claim(id).await;
        let args: OrphanFileCleanup = serde_json::from_value(row.args.clone()).unwrap();
        let job = Job::new(args, row.clone(), CancellationToken::new());
        match worker.work(job).await {
            Ok(()) => {
                assert_eq!(
                    self.store
                        .job_complete_many(vec![row.fence()])
                        .await
                        .unwrap(),
                    vec![true]
                );
                (Ok(()), self.store.job_get(id).await.unwrap().unwrap())
            }
            Err(JobError::Failed { message, .. }) => {
                let after = self
                    .store
                    .job_fail(JobFailParams {
                        fence: row.fence(),
                        error: message.clone(),
                        trace: None,
                        retry_in: Duration::ZERO,
                        discard: false,
                    })
                    .await
                    .unwrap();
                (Err(message), after)
            }
            Err(other) => panic!("the cleanup job must fail as retryable, not {other}"),
        }
    }
}
