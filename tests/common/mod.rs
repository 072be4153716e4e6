//! Shared test setup: a fresh database per test on each backend.
#![allow(dead_code)]

use std::sync::Arc;

use porter::store::Store;

/// One test's database: its URL, an open store, and what keeps it alive.
pub struct TestDb {
    /// URL that opens this same database (for more stores, or a child process).
    pub url: String,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The SQLite file's directory (removed on drop).
    pub dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// Opens another store (another connection set, like another process) on this database.
    pub async fn reopen(&self) -> Arc<dyn Store> {
        porter::store::open(&self.url)
            .await
            .expect("reopen the test database")
    }

    /// The tablo app's store over this database, its tables migrated.
    #[cfg(feature = "app")]
    pub async fn tablos(&self) -> Arc<dyn porter::app::store::TabloStore> {
        porter::app::store::open(self.store.clone())
            .await
            .expect("migrate the tablo app's tables")
    }

    /// The SQLite file path, on SQLite.
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        self.dir.as_ref().map(|d| d.path().join("porter.db"))
    }
}

/// A fresh SQLite file.
pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/porter.db", dir.path().display());
    let store = porter::store::open(&url).await.expect("open sqlite");
    TestDb {
        url,
        store,
        dir: Some(dir),
    }
}

/// The base Postgres URL, when the Postgres half runs.
pub fn postgres_base_url() -> Option<String> {
    std::env::var("PORTER_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// The outside server a test needs, named by `var`: build.rs only lets that test run when
/// `var` was set at build time or under CI, so a server missing now is a failure, with its
/// reason, never a quiet pass.
pub fn server(var: &str, what: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            panic!(
                "this test needs {what}, but {var} is not set (it was when the tests were built, \
                 or CI is set); scripts/test starts it"
            )
        })
}

/// A fresh Postgres schema.
pub async fn postgres() -> TestDb {
    let base = server("PORTER_TEST_DATABASE_URL", "PostgreSQL");
    let url = porter::store::postgres::PgStore::create_test_schema(&base)
        .await
        .expect("create test schema");
    let store = porter::store::open(&url).await.expect("open postgres");
    TestDb {
        url,
        store,
        dir: None,
    }
}

/// Generates `mod sqlite { fn case() }` and `mod postgres { fn case() }` for every case in
/// `cases`, each on its own fresh database. The Postgres half is ignored (with a reason in the
/// output) unless PORTER_TEST_DATABASE_URL or CI was set when the tests were built (build.rs).
/// `needs(cfg, "reason")` first marks cases that need another outside server: they are ignored
/// with that reason unless build.rs turned `cfg` on.
#[macro_export]
macro_rules! on_both_backends {
    (needs($cfg:meta, $why:literal) $cases:ident: $($name:ident),* $(,)?) => {
        $crate::on_both_backends!(@go ($cfg) ($why) $cases: $($name),*);
    };
    ($cases:ident: $($name:ident),* $(,)?) => {
        $crate::on_both_backends!(@go (all()) ("") $cases: $($name),*);
    };
    (@go ($cfg:meta) ($why:literal) $cases:ident: $($name:ident),*) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(not($cfg), ignore = $why)]
                async fn $name() {
                    let db = $crate::common::sqlite().await;
                    super::$cases::$name(db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(not(porter_pg_tests), ignore = "PORTER_TEST_DATABASE_URL not set: Postgres half skipped")]
                #[cfg_attr(all(porter_pg_tests, not($cfg)), ignore = $why)]
                async fn $name() {
                    let db = $crate::common::postgres().await;
                    super::$cases::$name(db).await;
                }
            )*
        }
    };
}

/// Adds the queue's own workers (`heartbeat` and the diagnostics `noop`, `sleep`, `fail`).
pub fn add_queue_workers(workers: &mut porter::Workers) {
    workers.add(porter::jobs::HeartbeatWorker).unwrap();
    workers.add(porter::jobs::NoopWorker).unwrap();
    workers.add(porter::jobs::SleepWorker).unwrap();
    workers.add(porter::jobs::FailWorker).unwrap();
}

/// Waits (bounded) until `f` returns true; panics with `what` otherwise. For behaviour, not
/// timing: the bound is generous and only stops a hung test.
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("gave up waiting for: {what}");
}
