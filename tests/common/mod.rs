//! Shared test setup: a fresh database per test on each backend.
#![allow(dead_code)]

use std::sync::Arc;

use porter::store::Store;

/// A job of `kind` (args `{}`) holding the unique key `key`.
pub fn keyed_job(kind: &str, key: &str) -> porter::store::JobInsertParams {
    porter::store::JobInsertParams::new(
        kind,
        serde_json::json!({}),
        porter::InsertOpts {
            unique_key: Some(key.into()),
            ..Default::default()
        },
    )
    .unwrap()
}

/// One test's database: its URL, an open store, and what keeps it alive.
pub struct TestDb {
    /// URL that opens this same database (for more stores, or a child process).
    pub url: String,
    /// The store.
    pub store: Arc<Store>,
    /// The SQLite file's directory (removed on drop).
    pub dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// Opens another store (another connection set, like another process) on this database.
    pub async fn reopen(&self) -> Arc<Store> {
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

    /// One number from raw SQL on this database, outside porter.
    pub async fn raw_count(&self, sql: &str) -> i64 {
        match self.sqlite_path() {
            Some(path) => {
                let c = rusqlite::Connection::open(path).unwrap();
                c.query_row(sql, [], |r| r.get(0)).unwrap()
            }
            None => {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
            }
        }
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

/// Opens a fresh database, for a case that needs several (the model test opens one per
/// random sequence).
pub type FreshDb = fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = TestDb>>>;

/// Defines a case once and generates its tests from the definition: `CASE::sqlite`, and
/// `CASE::postgres`, which is reported ignored (with the reason) unless
/// PORTER_TEST_DATABASE_URL or CI was set when the tests were built (build.rs). A case cannot
/// be written and then left out of a list. One backend's half: `cargo test --test X -- ::sqlite`.
///
/// ```ignore
/// backend_case! {
///     /// What the case proves.
///     async fn insert_defaults(db: TestDb) { ... }
/// }
/// ```
/// Each async case runs on its own fresh database (`TestDb`). The other forms:
/// - `needs(cfg, "reason"); async fn ...`: a case that needs another outside server, ignored
///   with that reason unless build.rs turned `cfg` on;
/// - `fn name(fresh: FreshDb) { ... }`: a synchronous case that opens fresh databases itself;
/// - `each_object_store; async fn name(fx: Fixture) { ... }` (tests/files.rs): the case on
///   each backend times each object store, `CASE::sqlite::{memory,file,s3}`; the S3 ones need
///   `porter_s3_tests`.
#[macro_export]
macro_rules! backend_case {
    () => {};
    (
        needs($cfg:meta, $why:literal);
        $(#[$attr:meta])*
        $vis:vis async fn $name:ident($db:ident: TestDb) $body:block
        $($rest:tt)*
    ) => {
        $crate::backend_case!(@async ($cfg) ($why) $(#[$attr])* $vis async fn $name($db) $body);
        $crate::backend_case! { $($rest)* }
    };
    (
        $(#[$attr:meta])*
        $vis:vis async fn $name:ident($db:ident: TestDb) $body:block
        $($rest:tt)*
    ) => {
        $crate::backend_case!(@async (all()) ("") $(#[$attr])* $vis async fn $name($db) $body);
        $crate::backend_case! { $($rest)* }
    };
    (
        @async ($cfg:meta) ($why:literal)
        $(#[$attr:meta])*
        $vis:vis async fn $name:ident($db:ident) $body:block
    ) => {
        $(#[$attr])*
        $vis async fn $name($db: $crate::common::TestDb) $body

        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(not($cfg), ignore = $why)]
            async fn sqlite() {
                super::$name($crate::common::sqlite().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(not(porter_pg_tests), ignore = "PORTER_TEST_DATABASE_URL not set: Postgres half skipped")]
            #[cfg_attr(all(porter_pg_tests, not($cfg)), ignore = $why)]
            async fn postgres() {
                super::$name($crate::common::postgres().await).await;
            }
        }
    };
    (
        $(#[$attr:meta])*
        $vis:vis fn $name:ident($fresh:ident: FreshDb) $body:block
        $($rest:tt)*
    ) => {
        $(#[$attr])*
        $vis fn $name($fresh: $crate::common::FreshDb) $body

        mod $name {
            #[test]
            fn sqlite() {
                super::$name(|| Box::pin($crate::common::sqlite()));
            }

            #[test]
            #[cfg_attr(not(porter_pg_tests), ignore = "PORTER_TEST_DATABASE_URL not set: Postgres half skipped")]
            fn postgres() {
                super::$name(|| Box::pin($crate::common::postgres()));
            }
        }

        $crate::backend_case! { $($rest)* }
    };
    (
        each_object_store;
        $(#[$attr:meta])*
        $vis:vis async fn $name:ident($fx:ident: Fixture) $body:block
        $($rest:tt)*
    ) => {
        $(#[$attr])*
        $vis async fn $name($fx: $crate::files_fixture::Fixture) $body

        mod $name {
            mod sqlite {
                $crate::backend_case!(@objects sqlite, $name, memory: Memory (all(), ""));
                $crate::backend_case!(@objects sqlite, $name, file: File (all(), ""));
                $crate::backend_case!(@objects sqlite, $name, s3: S3
                    (porter_s3_tests, "PORTER_TEST_S3_ENDPOINT not set: S3 case skipped"));
            }
            mod postgres {
                $crate::backend_case!(@objects postgres, $name, memory: Memory (all(), ""));
                $crate::backend_case!(@objects postgres, $name, file: File (all(), ""));
                $crate::backend_case!(@objects postgres, $name, s3: S3
                    (porter_s3_tests, "PORTER_TEST_S3_ENDPOINT not set: S3 case skipped"));
            }
        }

        $crate::backend_case! { $($rest)* }
    };
    (@objects sqlite, $name:ident, $store:ident: $kind:ident ($cfg:meta, $why:literal)) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[cfg_attr(not($cfg), ignore = $why)]
        async fn $store() {
            let db = $crate::common::sqlite().await;
            let objects = $crate::files_fixture::Objects::$kind;
            super::super::$name($crate::files_fixture::Fixture::new(db, objects).await).await;
        }
    };
    (@objects postgres, $name:ident, $store:ident: $kind:ident ($cfg:meta, $why:literal)) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[cfg_attr(not(porter_pg_tests), ignore = "PORTER_TEST_DATABASE_URL not set: Postgres half skipped")]
        #[cfg_attr(all(porter_pg_tests, not($cfg)), ignore = $why)]
        async fn $store() {
            let db = $crate::common::postgres().await;
            let objects = $crate::files_fixture::Objects::$kind;
            super::super::$name($crate::files_fixture::Fixture::new(db, objects).await).await;
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

/// Waits (bounded) until the threads reading a child's output have ended (at the end of its
/// pipes, once it exited): then every line it wrote has been read.
pub async fn readers_done(readers: &[std::thread::JoinHandle<()>]) {
    eventually("the child's output read to its end", || async {
        readers.iter().all(|r| r.is_finished())
    })
    .await;
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

/// The server process of a PostgreSQL connection (for [`pg_blocked_by`]).
pub async fn pg_pid(conn: &mut sqlx::PgConnection) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(conn)
        .await
        .unwrap()
}

/// Waits (bounded) until at least `n` statements wait for locks the server process `holder`
/// holds (those whose text starts with `starting`, when given): what a test that holds a
/// transaction open needs before it lets go, in place of a pause that a loaded machine can
/// outrun. Asked on a connection of its own.
pub async fn pg_blocked_by(url: &str, holder: i32, n: i64, starting: Option<&str>) {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE $1 = ANY(pg_blocking_pids(pid)) AND ($2::text IS NULL OR starts_with(query, $2))",
        )
        .bind(holder)
        .bind(starting)
        .fetch_one(&mut c)
        .await
        .unwrap();
        if waiting >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {n} statements blocked by {holder} ({waiting})"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Runs raw SQL on the test database through the driver, outside porter (what another
/// program's plain statements do).
pub async fn raw_exec(db: &TestDb, sql: &str) {
    if let Err(e) = raw_try(db, sql).await {
        panic!("{e}\n{sql}");
    }
}

/// [`raw_exec`], answering the database's refusal (its message) instead of panicking.
pub async fn raw_try(db: &TestDb, sql: &str) -> Result<(), String> {
    match db.sqlite_path() {
        Some(path) => {
            let c = rusqlite::Connection::open(path).unwrap();
            c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
            c.execute_batch(sql).map_err(|e| e.to_string())
        }
        None => {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::raw_sql(sql)
                .execute(&mut c)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    }
}

/// Inserts a `noop` job, waits until a worker completed it, and deletes its row: the worker's
/// producer has made its first claims, and sleeps until a wake-up or its poll. A test of
/// wake-ups that inserted after a fixed pause instead could land before the first claim on a
/// loaded machine, which took the job without any wake-up (review of 6 Dec).
pub async fn probe_job_runs(db: &TestDb) {
    let store = &db.store;
    let id = porter::Client::new(store.clone())
        .insert_raw("noop", serde_json::json!({}), Default::default())
        .await
        .expect("insert the probe job")
        .job
        .id;
    eventually("the probe job ran", || async {
        store
            .job_get(id)
            .await
            .ok()
            .flatten()
            .is_some_and(|j| j.state == porter::JobState::Completed)
    })
    .await;
    raw_exec(db, &format!("DELETE FROM porter_jobs WHERE id = {id}")).await;
}
