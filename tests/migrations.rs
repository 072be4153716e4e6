//! porter's migrations beside an application's own: porter records what it applied in its own
//! table, `porter_migrations`, never in `_sqlx_migrations` (Postgres) or `PRAGMA user_version`
//! (SQLite), which belong to the application sharing the database; databases migrated the old
//! way (porter 0.1, whose migrations are kept in tests/fixtures/porter-0.1-migrations) move to
//! it in place. Each case runs on both backends.

mod common;

use std::path::{Path, PathBuf};

use porter::store::Backend;
use porter::{Error, Job, JobArgs, JobError, JobState, Worker, Workers};

use crate::common::TestDb;

/// The migration sets a fresh database gets from opening a store, as `set:version` rows:
/// the queue's only (the tablo app migrates its own set).
fn all_sets() -> Vec<String> {
    use porter::store::migrations::CORE;
    [&CORE]
        .iter()
        .flat_map(|set| {
            set.migrations
                .iter()
                .map(move |m| format!("{}:{}", set.name, m.version))
        })
        .collect()
}

/// [`all_sets`] in the order of `porter_versions` (set name, then version as a number: 10
/// after 9).
fn sorted_sets() -> Vec<String> {
    let mut sets = all_sets();
    sets.sort_by_key(|s| {
        let (set, version) = s.split_once(':').expect("set:version");
        (set.to_string(), version.parse::<i64>().expect("a version"))
    });
    sets
}

/// A database porter has not opened yet, on the backend of `db`.
async fn fresh_url(db: &TestDb, name: &str) -> String {
    match db.store.backend() {
        Backend::Sqlite => format!(
            "sqlite://{}/{name}.db",
            db.dir.as_ref().unwrap().path().display()
        ),
        Backend::Postgres => porter::store::postgres::PgStore::create_test_schema(
            &common::postgres_base_url().unwrap(),
        )
        .await
        .unwrap(),
    }
}

/// An application's version: sqlx applications number theirs by date and time; SQLite's
/// `user_version` holds 32 bits.
fn app_version(db: &TestDb, sqlite: i64, postgres: i64) -> i64 {
    match db.store.backend() {
        Backend::Sqlite => sqlite,
        Backend::Postgres => postgres,
    }
}

/// A plain connection beside porter's, as the application's own code would hold.
enum Raw {
    Sqlite(rusqlite::Connection),
    Postgres(sqlx::PgPool),
}

impl Raw {
    async fn connect(url: &str) -> Raw {
        match url.strip_prefix("sqlite://") {
            Some(path) => {
                let c = rusqlite::Connection::open(path).unwrap();
                c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
                Raw::Sqlite(c)
            }
            None => Raw::Postgres(sqlx::PgPool::connect(url).await.unwrap()),
        }
    }

    async fn exec(&self, sql: &str) {
        match self {
            Raw::Sqlite(c) => c.execute_batch(sql).unwrap(),
            Raw::Postgres(pool) => {
                sqlx::raw_sql(sql).execute(pool).await.unwrap();
            }
        }
    }

    /// The rows of a query of one text column.
    async fn texts(&self, sql: &str) -> Vec<String> {
        match self {
            Raw::Sqlite(c) => {
                let mut stmt = c.prepare(sql).unwrap();
                let rows = stmt.query_map([], |r| r.get(0)).unwrap();
                rows.collect::<Result<_, _>>().unwrap()
            }
            Raw::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
        }
    }

    /// Whether a table of that name is visible.
    async fn has_table(&self, name: &str) -> bool {
        let sql = match self {
            Raw::Sqlite(_) => {
                format!("SELECT name FROM sqlite_master WHERE type = 'table' AND name = '{name}'")
            }
            Raw::Postgres(_) => {
                format!("SELECT '{name}' WHERE to_regclass('{name}') IS NOT NULL")
            }
        };
        !self.texts(&sql).await.is_empty()
    }

    /// porter's bookkeeping, as `set:version` rows in order.
    async fn porter_versions(&self) -> Vec<String> {
        if !self.has_table("porter_migrations").await {
            return Vec::new();
        }
        self.texts(
            "SELECT set_name || ':' || CAST(version AS TEXT) FROM porter_migrations ORDER BY set_name, version",
        )
        .await
    }

    /// The application's own bookkeeping: `PRAGMA user_version` on SQLite, the versions in
    /// `_sqlx_migrations` on Postgres.
    async fn app_versions(&self) -> Vec<String> {
        match self {
            Raw::Sqlite(c) => {
                let v: i64 = c
                    .query_row("PRAGMA user_version", [], |r| r.get(0))
                    .unwrap();
                vec![v.to_string()]
            }
            Raw::Postgres(_) => {
                if !self.has_table("_sqlx_migrations").await {
                    return Vec::new();
                }
                self.texts("SELECT CAST(version AS TEXT) FROM _sqlx_migrations ORDER BY version")
                    .await
            }
        }
    }
}

/// An application's own migrations, the way it would keep them: on SQLite a table and
/// `PRAGMA user_version = version`; on Postgres a sqlx migration of that version, run by
/// sqlx's own migrator. `ignore_missing`: what an application beside porter 0.1 had to set.
struct AppMigrations {
    version: i64,
    dir: tempfile::TempDir,
}

impl AppMigrations {
    fn new(version: i64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(format!("{version}_app_things.sql")),
            "CREATE TABLE IF NOT EXISTS app_things (id BIGINT PRIMARY KEY, note TEXT NOT NULL);",
        )
        .unwrap();
        AppMigrations { version, dir }
    }

    async fn run(&self, url: &str, ignore_missing: bool) -> Result<(), String> {
        match url.strip_prefix("sqlite://") {
            Some(_) => {
                let Raw::Sqlite(c) = Raw::connect(url).await else {
                    unreachable!()
                };
                c.execute_batch(&format!(
                    "CREATE TABLE IF NOT EXISTS app_things (id BIGINT PRIMARY KEY, note TEXT NOT NULL);
                     PRAGMA user_version = {};",
                    self.version
                ))
                .map_err(|e| e.to_string())
            }
            None => {
                let mut migrator = sqlx::migrate::Migrator::new(self.dir.path()).await.unwrap();
                migrator.set_ignore_missing(ignore_missing);
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                let result = migrator.run(&pool).await.map_err(|e| e.to_string());
                pool.close().await;
                result
            }
        }
    }

    /// What the application's own bookkeeping reads once it ran.
    fn recorded(&self) -> Vec<String> {
        vec![self.version.to_string()]
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Noop {}

impl JobArgs for Noop {
    const KIND: &'static str = "noop";
}

struct NoopWorker;

#[async_trait::async_trait]
impl Worker<Noop> for NoopWorker {
    async fn work(&self, _job: Job<Noop>) -> Result<(), JobError> {
        Ok(())
    }
}

/// Inserts a job through porter and runs every due job: the queue works on this database.
async fn jobs_work(url: &str) {
    let store = porter::store::open(url)
        .await
        .expect("porter opens the database");
    let client = porter::Client::new(store.clone());
    let id = client.insert(&Noop {}, None).await.unwrap().job.id;
    let mut workers = Workers::new();
    workers.add(NoopWorker).unwrap();
    let outcomes = porter::testing::run_available(&store, workers, "default")
        .await
        .unwrap();
    assert!(
        outcomes
            .iter()
            .any(|o| o.id == id && o.state == JobState::Completed),
        "{outcomes:?}"
    );
}

backend_case! {
    async fn porter_keeps_its_own_bookkeeping(db: TestDb) {
        let raw = Raw::connect(&db.url).await;
        let expected = sorted_sets();
        assert_eq!(raw.porter_versions().await, expected);
        match &raw {
            // user_version is the application's: porter leaves it at SQLite's 0.
            Raw::Sqlite(_) => assert_eq!(raw.app_versions().await, vec!["0"]),
            Raw::Postgres(_) => assert!(!raw.has_table("_sqlx_migrations").await),
        }
    }
}

backend_case! {
    async fn porter_migrates_after_the_applications_own_migrations(db: TestDb) {
        // 4: porter 0.1's own newest version (SQLite reported "migrated" while porter's
        // tables did not exist); a timestamp, as sqlx applications number theirs.
        for version in [4, app_version(&db, 7, 20240101000000)] {
            let url = fresh_url(&db, &format!("app-first-{version}")).await;
            let app = AppMigrations::new(version);
            app.run(&url, false).await.unwrap();

            jobs_work(&url).await;

            let raw = Raw::connect(&url).await;
            assert_eq!(raw.app_versions().await, app.recorded());
            assert_eq!(raw.porter_versions().await.len(), all_sets().len());
            // The application's migrator still finds only its own versions.
            app.run(&url, false)
                .await
                .expect("the application migrates again beside porter");
            jobs_work(&url).await;
        }
    }
}

backend_case! {
    async fn the_application_migrates_after_porter(db: TestDb) {
        // porter first (the test database is migrated), then the application.
        let app = AppMigrations::new(app_version(&db, 7, 20240101000000));
        app.run(&db.url, false)
            .await
            .expect("the application's own migrations run beside porter's");
        let raw = Raw::connect(&db.url).await;
        assert_eq!(raw.app_versions().await, app.recorded());
        raw.exec("INSERT INTO app_things (id, note) VALUES (1, 'mine')")
            .await;
        // porter still sees itself migrated, and works.
        jobs_work(&db.url).await;
        assert_eq!(raw.porter_versions().await.len(), all_sets().len());
        // An application version below porter's own newest changes nothing either.
        let low = AppMigrations::new(2);
        if db.store.backend() == Backend::Sqlite {
            low.run(&db.url, false).await.unwrap();
            jobs_work(&db.url).await;
        }
    }
}

/// Builds the database porter 0.1 left behind: its four migrations, recorded the way it
/// recorded them (rusqlite_migration's `user_version`; sqlx's `_sqlx_migrations`).
async fn porter_0_1_database(url: &str) {
    let fixtures =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/porter-0.1-migrations");
    match url.strip_prefix("sqlite://") {
        Some(_) => {
            let Raw::Sqlite(mut c) = Raw::connect(url).await else {
                unreachable!()
            };
            c.execute_batch("PRAGMA journal_mode = WAL").unwrap();
            for file in sorted_sql_files(&fixtures.join("sqlite")) {
                let tx = c.transaction().unwrap();
                tx.execute_batch(&std::fs::read_to_string(&file).unwrap())
                    .unwrap();
                let version: i64 = file.file_name().unwrap().to_str().unwrap()[..4]
                    .parse()
                    .unwrap();
                tx.pragma_update(None, "user_version", version).unwrap();
                tx.commit().unwrap();
            }
        }
        None => {
            let migrator = sqlx::migrate::Migrator::new(fixtures.join("postgres"))
                .await
                .unwrap();
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            migrator.run(&pool).await.unwrap();
            pool.close().await;
        }
    }
}

fn sorted_sql_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

backend_case! {
    async fn a_database_of_porter_0_1_moves_in_place_and_its_jobs_keep_working(db: TestDb) {
        let url = fresh_url(&db, "porter-0.1").await;
        porter_0_1_database(&url).await;
        let raw = Raw::connect(&url).await;
        let old_bookkeeping = raw.app_versions().await;
        // What porter 0.1 left: a job waiting, a tablo with a file.
        raw.exec(
            "INSERT INTO porter_jobs (kind, args) VALUES ('noop', '{}');
             INSERT INTO tablos (id, name) VALUES ('6f1c5f44-2f7b-4c3e-9d55-8a0b8e1c1a01', 'kept');
             INSERT INTO tablo_files (id, tablo_id, s3_key, size)
                 VALUES ('6f1c5f44-2f7b-4c3e-9d55-8a0b8e1c1a02', '6f1c5f44-2f7b-4c3e-9d55-8a0b8e1c1a01', 'tablos/a/b', 1);",
        )
        .await;
        // An application beside porter 0.1 on Postgres had to tell sqlx to ignore porter's rows.
        let app = AppMigrations::new(20240101000000);
        if let Raw::Postgres(_) = &raw {
            app.run(&url, true).await.unwrap();
        }

        let store = porter::store::open(&url)
            .await
            .expect("porter opens a database of porter 0.1");
        let old_job = porter::Client::new(store.clone())
            .list(Default::default())
            .await
            .unwrap();
        assert_eq!(old_job.len(), 1, "porter 0.1's job is there");
        // Extended below when the tablo app is built in.
        #[cfg_attr(not(feature = "app"), allow(unused_mut))]
        let mut expected = sorted_sets();
        assert_eq!(raw.porter_versions().await, expected);
        match &raw {
            // user_version now is the application's: porter leaves it as it was.
            Raw::Sqlite(_) => assert_eq!(raw.app_versions().await, old_bookkeeping),
            // porter took its own rows out of _sqlx_migrations; the application's stay, and
            // its migrator runs without ignoring anything.
            Raw::Postgres(_) => {
                assert_eq!(raw.app_versions().await, app.recorded());
                app.run(&url, false).await.unwrap();
            }
        }
        // The tablo app's set finds porter 0.1's tablo tables there: its first migration
        // creates nothing that exists, and is recorded as the app's.
        #[cfg(feature = "app")]
        {
            porter::app::store::migrate(store.as_ref()).await.unwrap();
            let mut with_app = expected.clone();
            let app_set = &porter::app::store::MIGRATIONS;
            with_app.extend(
                app_set
                    .migrations
                    .iter()
                    .map(|m| format!("{}:{}", app_set.name, m.version)),
            );
            with_app.sort_by_key(|s| {
                let (set, version) = s.split_once(':').expect("set:version");
                (set.to_string(), version.parse::<i64>().expect("a version"))
            });
            assert_eq!(raw.porter_versions().await, with_app);
            expected = with_app;
        }
        assert_eq!(
            raw.texts("SELECT name FROM tablos").await,
            vec!["kept".to_string()]
        );
        assert_eq!(
            raw.texts("SELECT s3_key FROM tablo_files").await,
            vec!["tablos/a/b".to_string()]
        );
        drop(store);

        // The job of porter 0.1 runs, beside new ones; opening again changes nothing.
        jobs_work(&url).await;
        let store = porter::store::open(&url).await.unwrap();
        let job = porter::Client::new(store)
            .get(old_job[0].id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(job.state, JobState::Completed);
        assert_eq!(raw.porter_versions().await, expected);
    }
}

backend_case! {
    async fn concurrent_first_opens_of_a_fresh_database_all_succeed(db: TestDb) {
        let url = fresh_url(&db, "raced").await;
        let opens = (0..4).map(|_| {
            let url = url.clone();
            tokio::spawn(async move { porter::store::open(&url).await.map(drop) })
        });
        for open in futures::future::join_all(opens).await {
            open.unwrap()
                .expect("every concurrent open migrates or finds the database migrated");
        }
        let expected = sorted_sets();
        assert_eq!(Raw::connect(&url).await.porter_versions().await, expected);
        jobs_work(&url).await;
    }
}

backend_case! {
    async fn only_porters_own_record_makes_a_database_too_new(db: TestDb) {
        // The application's bookkeeping far ahead of porter's is none of porter's business.
        let app = AppMigrations::new(app_version(&db, 99, 99990101000000));
        app.run(&db.url, false).await.unwrap();
        porter::store::open(&db.url)
            .await
            .expect("the application's newer version does not refuse porter");

        record_newer(&db, "porter", 99).await;
        match porter::store::open(&db.url).await {
            Err(Error::DatabaseTooNew { set, found, known }) => {
                assert_eq!((set, found), ("porter", 99));
                assert_eq!(known, porter::store::migrations::CORE.latest());
            }
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a database newer than this porter must be refused"),
        }
    }
}

backend_case! {
    /// A database whose bookkeeping lacks a version below the newest it records (a row deleted
    /// by hand, a restore of part of the table) is refused, and nothing is applied: porter ran
    /// the missing migration again, after the newer ones, and put back an old definition of
    /// the triggers it replaced (review of 6 Dec: without row 20 SQLite's completion trigger
    /// counted a batch's ends twice, and a child ran before its parent; without 39 or 30
    /// PostgreSQL's functions lost their later fixes and their search path), and exited 0. A
    /// version below 1, which no porter carries, is refused with its own number, not as a
    /// database newer than this porter ("upgrade porter" would not help).
    async fn a_database_missing_a_recorded_version_is_refused_and_left_as_it_is(db: TestDb) {
        let raw = Raw::connect(&db.url).await;
        raw.exec("DELETE FROM porter_migrations WHERE set_name = 'porter' AND version = 20")
            .await;
        let before = raw.porter_versions().await;
        let refused = match porter::store::open(&db.url).await {
            Err(e @ Error::Migration(_)) => e.to_string(),
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a database missing version 20 must be refused"),
        };
        assert!(refused.contains("20") && refused.contains("porter"), "{refused}");
        assert_eq!(raw.porter_versions().await, before, "nothing applied");

        raw.exec(
            "INSERT INTO porter_migrations (set_name, version, name, applied_at)
             SELECT set_name, 20, name, applied_at FROM porter_migrations
             WHERE set_name = 'porter' AND version = 19",
        )
        .await;
        porter::store::open(&db.url).await.expect("whole again");
        record_newer(&db, "porter", 0).await;
        let refused = match porter::store::open(&db.url).await {
            Err(e @ Error::Migration(_)) => e.to_string(),
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a database recording version 0 must be refused"),
        };
        assert!(
            refused.contains("version 0") && !refused.contains("upgrade"),
            "{refused}"
        );
    }
}

backend_case! {
    /// Each migration is recorded with the checksum of the SQL it applied, and a database
    /// that applied a version from other SQL than this binary carries is refused, naming the
    /// version, with nothing changed: until 7 Dec porter compared versions only, and a file
    /// migrated by a build of an earlier 0059 was taken as up to date, then every worker start
    /// failed on a column it lacked (review of 7 Dec). A table from before checksums were
    /// recorded gets the column, its earlier rows none (not verified).
    async fn a_migration_applied_from_other_sql_is_refused(db: TestDb) {
        use porter::store::migrations::{checksum, CORE};
        let raw = Raw::connect(&db.url).await;
        let sqlite = matches!(raw, Raw::Sqlite(_));
        let recorded = raw
            .texts("SELECT version || ':' || checksum FROM porter_migrations WHERE set_name = 'porter' ORDER BY version")
            .await;
        let carried: Vec<String> = CORE
            .migrations
            .iter()
            .map(|m| format!("{}:{}", m.version, checksum(if sqlite { m.sqlite } else { m.postgres })))
            .collect();
        assert_eq!(recorded, carried);

        raw.exec("UPDATE porter_migrations SET checksum = 'edited' WHERE set_name = 'porter' AND version = 59")
            .await;
        let refused = match porter::store::open(&db.url).await {
            Err(e @ Error::Migration(_)) => e.to_string(),
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a database that applied other SQL as 59 must be refused"),
        };
        assert!(refused.contains("version 59") && refused.contains("porter"), "{refused}");
        raw.exec("UPDATE porter_migrations SET checksum = NULL WHERE set_name = 'porter' AND version = 59")
            .await;
        porter::store::open(&db.url).await.expect("a row without a checksum is not verified");

        // A table from before checksums (as older porters left it), one migration behind.
        let (url, raw) = database_at(&db, "before-checksums", CORE.latest() - 1).await;
        porter::store::open(&url).await.expect("migrates");
        let before = CORE.latest() - 1;
        let sums = raw
            .texts(&format!("SELECT version || ':' || coalesce(checksum, '-') FROM porter_migrations WHERE set_name = 'porter' AND version >= {before} ORDER BY version"))
            .await;
        let last = CORE.migrations.last().unwrap();
        let want = checksum(if sqlite { last.sqlite } else { last.postgres });
        assert_eq!(sums, vec![format!("{before}:-"), format!("{}:{want}", CORE.latest())]);
        porter::store::open(&url).await.expect("and opens again");
    }
}

/// Records `version` of `set` in porter_migrations, as a newer porter would have.
async fn record_newer(db: &TestDb, set: &str, version: i64) {
    let raw = Raw::connect(&db.url).await;
    let now = match &raw {
        Raw::Sqlite(_) => "strftime('%Y-%m-%dT%H:%M:%fZ','now')",
        Raw::Postgres(_) => "now()",
    };
    raw.exec(&format!(
        "INSERT INTO porter_migrations (set_name, version, name, applied_at)
         VALUES ('{set}', {version}, 'from a newer porter', {now})"
    ))
    .await;
}

/// The tablo app's set (only in a build with the app).
#[cfg(feature = "app")]
mod newer_set {
    use super::*;

    backend_case! {
        /// A set newer than this binary is named in the refusal: the tablo app's set at 9 was
        /// "the database schema is at version 9, newer than this porter (knows up to 2)" where
        /// porter's own schema was at 51 (review of 6 Dec).
        async fn a_set_newer_than_this_binary_is_named_in_the_refusal(db: TestDb) {
            record_newer(&db, "tablo", 9).await;
            let refused = porter::app::store::open(db.store.clone())
                .await
                .err()
                .expect("a newer tablo set is refused")
                .to_string();
            assert!(
                refused.contains("migration set \"tablo\" is at version 9")
                    && refused.contains("knows up to 2"),
                "{refused}"
            );
        }
    }
}

/// An application's own set, run by porter's runner beside the queue's.
const NOTES: porter::store::migrations::MigrationSet = porter::store::migrations::MigrationSet {
    name: "notes",
    migrations: &[porter::store::migrations::Migration {
        version: 1,
        name: "notes",
        sqlite: "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
        postgres: "CREATE TABLE notes (id BIGINT PRIMARY KEY, body TEXT NOT NULL)",
    }],
};

backend_case! {
    /// Opening a store creates the queue's tables only (the tablo app's come from its own set,
    /// tests/app.rs); an application's own set runs beside them, once.
    async fn a_new_database_gets_the_queues_tables_and_an_application_set_runs_beside(db: TestDb) {
        use porter::store::migrations::CORE;
        let url = fresh_url(&db, "core-only").await;
        porter::store::migrate(&url, &CORE).await.unwrap();
        let raw = Raw::connect(&url).await;
        assert!(raw.has_table("porter_jobs").await);
        for table in ["tablos", "tablo_files", "tablo_file_uploads"] {
            assert!(!raw.has_table(table).await, "{table} is not the queue's");
        }
        porter::store::migrate(&url, &NOTES).await.unwrap();
        assert!(raw.has_table("notes").await);
        // Running a set again does nothing.
        porter::store::migrate(&url, &NOTES).await.unwrap();
        let rows = raw
            .porter_versions()
            .await
            .into_iter()
            .filter(|v| v.starts_with("notes:"))
            .count();
        assert_eq!(rows, NOTES.migrations.len());
        jobs_work(&url).await;
    }
}

backend_case! {
    async fn an_applications_table_named_like_porters_is_not_taken_for_porters(db: TestDb) {
        // An application's own table that happens to be called porter_jobs is not a database
        // of porter 0.1: porter refuses clearly, records nothing, and once the application
        // renames its table porter migrates from the start.
        let url = fresh_url(&db, "app-porter-jobs").await;
        let raw = Raw::connect(&url).await;
        raw.exec("CREATE TABLE porter_jobs (id INTEGER PRIMARY KEY, note TEXT)")
            .await;
        match porter::store::open(&url).await {
            Err(Error::Migration(message)) => {
                assert!(message.contains("porter_jobs"), "{message}")
            }
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("an application's porter_jobs must not be taken for porter's"),
        }
        assert_eq!(raw.porter_versions().await, Vec::<String>::new());
        raw.exec("ALTER TABLE porter_jobs RENAME TO app_jobs").await;
        porter::store::open(&url)
            .await
            .expect("migrates from the start");
        jobs_work(&url).await;
    }
}

/// What only PostgreSQL has: schemas on a search path, isolation levels set per database or
/// connection, functions that outlive the tables. (SQLite has one schema per file and
/// serialises its writers.)
mod postgres_only {
    use porter::store::postgres::PgStore;
    use sqlx::Row;

    use crate::common;

    /// A new schema of its own on the test server, and its name.
    async fn schema() -> (String, String) {
        let url = PgStore::create_test_schema(&common::postgres_base_url().unwrap())
            .await
            .unwrap();
        let name = url::Url::parse(&url)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "options")
            .map(|(_, v)| v.trim_start_matches("-c search_path=").to_string())
            .unwrap();
        (url, name)
    }

    /// The test server's URL with these connection options.
    fn with_options(options: &str) -> String {
        let mut url = url::Url::parse(&common::postgres_base_url().unwrap()).unwrap();
        url.query_pairs_mut().append_pair("options", options);
        url.to_string()
    }

    async fn count(pool: &sqlx::PgPool, sql: &str) -> i64 {
        sqlx::query(sql).fetch_one(pool).await.unwrap().get(0)
    }

    /// Opens the database at `url` (porter's migrations due) while another session holds a
    /// read of `table` open: once porter's lock request waits, a reader of `table` still gets
    /// through, and the open ends only after the read transaction did. Answers a connection
    /// to the database.
    async fn opens_giving_way_on(url: &str, table: &str) -> sqlx::PgPool {
        let holder = sqlx::PgPool::connect(url).await.unwrap();
        let mut held = holder.begin().await.unwrap();
        sqlx::query(&format!("SELECT count(*) FROM {table}"))
            .execute(&mut *held)
            .await
            .unwrap();
        let opening = tokio::spawn({
            let url = url.to_string();
            async move { porter::store::open(&url).await.map(|_| ()) }
        });
        let other = sqlx::PgPool::connect(url).await.unwrap();
        let waiting = format!(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
             WHERE NOT l.granted AND c.relname = '{table}' \
             AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())"
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while count(&other, &waiting).await == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "porter never asked for its lock on {table}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // Before, the reader waited until the transaction ended (here: for good).
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            count(&other, &format!("SELECT count(*) FROM {table}")),
        )
        .await;
        assert!(
            read.is_ok(),
            "the reader waited behind porter's lock request on {table}"
        );
        assert!(!opening.is_finished(), "porter cannot have its lock yet");
        held.rollback().await.unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(60), opening)
            .await
            .expect("porter gets its lock once the transaction ended")
            .unwrap()
            .expect("the open succeeds");
        other
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(porter_pg_tests),
        ignore = "PORTER_TEST_DATABASE_URL not set at build time"
    )]
    async fn adding_the_checksum_column_gives_way_too() {
        // An up-to-date database from before checksums gets the column at its next open. The
        // ALTER waited without limit behind a session that read porter_migrations (a pg_dump),
        // and every other process's start queued behind it (review of b48446f).
        let (url, _) = schema().await;
        super::migrated_to(&url, porter::store::migrations::CORE.latest()).await;
        let other = opens_giving_way_on(&url, "porter_migrations").await;
        assert_eq!(
            count(&other, "SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'porter_migrations' AND column_name = 'checksum'").await,
            1
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(porter_pg_tests),
        ignore = "PORTER_TEST_DATABASE_URL not set at build time"
    )]
    async fn a_migration_waiting_for_a_lock_gives_way_to_the_queues_statements() {
        // Migration 60 drops a trigger of porter_jobs, which asks for an ACCESS EXCLUSIVE lock.
        // Behind a transaction held open on the table, that request waited in the lock queue,
        // and every later statement on porter_jobs (claims, completions, listings) waited behind
        // it for as long as the transaction stayed open (review of 7 Dec).
        let (url, _) = schema().await;
        super::migrated_to(&url, 59).await;
        let other = opens_giving_way_on(&url, "porter_jobs").await;
        assert_eq!(
            count(
                &other,
                "SELECT max(version) FROM porter_migrations WHERE set_name = 'porter'"
            )
            .await,
            porter::store::migrations::CORE.latest()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(porter_pg_tests),
        ignore = "PORTER_TEST_DATABASE_URL not set at build time"
    )]
    async fn a_search_path_that_starts_with_the_temporary_schema_is_refused() {
        // porter creates its tables in the first schema of the search path: `pg_temp` first
        // made that the session's temporary schema, where the first migrations ran as temporary
        // tables and the seventh failed on a function it could not find (review of 6 Dec).
        let (_, schema) = schema().await;
        let url = with_options(&format!("-c search_path=pg_temp,{schema}"));
        match porter::store::open(&url).await {
            Err(e @ porter::Error::Invalid { .. }) => {
                let message = e.to_string();
                assert!(message.contains("pg_temp"), "{message}");
            }
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a temporary schema must be refused"),
        }
        let pool = sqlx::PgPool::connect(&with_options(&format!("-c search_path={schema}")))
            .await
            .unwrap();
        assert_eq!(
            count(
                &pool,
                "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"
            )
            .await,
            0,
            "nothing created"
        );
        porter::store::open(&with_options(&format!("-c search_path={schema},pg_temp")))
            .await
            .expect("pg_temp last is porter's own choice");
        // A schema whose name must be quoted (capitals, a dot) is porter's as any
        // other: the check read the name as an unquoted identifier and refused every open of
        // such a schema (own review of 6 Dec).
        let quoted = format!("{schema}_Tenant.A");
        sqlx::query(&format!("CREATE SCHEMA \"{quoted}\""))
            .execute(&pool)
            .await
            .unwrap();
        let url = with_options(&format!("-c search_path=\"{quoted}\""));
        porter::store::open(&url)
            .await
            .expect("a quoted schema opens");
        porter::store::open(&url)
            .await
            .expect("and opens again, migrated");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(porter_pg_tests),
        ignore = "PORTER_TEST_DATABASE_URL not set at build time"
    )]
    async fn a_schema_gets_its_own_tables_when_a_later_schema_on_its_path_has_porters() {
        // One schema per tenant, with a shared schema behind it on the search path: the shared
        // one's porter tables must neither stop the tenant's migrations nor be adopted.
        let (shared_url, shared) = schema().await;
        porter::store::open(&shared_url).await.unwrap();
        let (_, tenant) = schema().await;
        let tenant_url = with_options(&format!("-c search_path={tenant},{shared}"));
        let store = porter::store::open(&tenant_url).await.unwrap();
        porter::Client::new(store)
            .insert_raw("tenant_job", serde_json::json!({}), Default::default())
            .await
            .unwrap();

        let pool = sqlx::PgPool::connect(&common::postgres_base_url().unwrap())
            .await
            .unwrap();
        for table in ["porter_jobs", "porter_migrations"] {
            let here = count(
                &pool,
                &format!("SELECT count(*) FROM pg_tables WHERE schemaname = '{tenant}' AND tablename = '{table}'"),
            )
            .await;
            assert_eq!(here, 1, "{table} in the tenant's own schema");
        }
        assert_eq!(
            count(&pool, &format!("SELECT count(*) FROM {tenant}.porter_jobs")).await,
            1
        );
        assert_eq!(
            count(&pool, &format!("SELECT count(*) FROM {shared}.porter_jobs")).await,
            0,
            "the tenant's job stays out of the shared schema"
        );
    }

    /// Another program's statements on one schema's jobs, from a session whose search path
    /// names another schema with porter's tables (one schema per tenant): porter's triggers
    /// act on the jobs' own schema. They named their tables unqualified and took the caller's
    /// path (review of 6 Dec): a `DELETE` of tenant A's parent deleted tenant B's edge of the
    /// same ids, and an `UPDATE` completing A's parent released B's waiting child, while A's
    /// child waited for good.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(porter_pg_tests),
        ignore = "PORTER_TEST_DATABASE_URL not set at build time"
    )]
    async fn triggers_act_on_their_own_schema_whatever_the_callers_search_path() {
        let (a_url, a) = schema().await;
        let (b_url, b) = schema().await;
        // Each schema: a parent, a child waiting for it (ids 1 and 2 in both), and a second
        // parent and child (3 and 4).
        for url in [&a_url, &b_url] {
            let client = porter::Client::new(porter::store::open(url).await.unwrap());
            for _ in 0..2 {
                let parent = client
                    .insert_raw("parent", serde_json::json!({}), Default::default())
                    .await
                    .unwrap()
                    .job
                    .id;
                let opts = porter::job::InsertOpts {
                    depends_on: vec![parent],
                    ..Default::default()
                };
                client
                    .insert_raw("child", serde_json::json!({}), opts)
                    .await
                    .unwrap();
            }
        }
        // A session on B's path writes A's rows, naming A's schema.
        let on_b = sqlx::PgPool::connect(&with_options(&format!("-c search_path={b}")))
            .await
            .unwrap();
        sqlx::raw_sql(&format!(
            "UPDATE {a}.porter_jobs SET state = 'completed', finalized_at = now() WHERE id = 1;
             DELETE FROM {a}.porter_jobs WHERE id = 3;"
        ))
        .execute(&on_b)
        .await
        .unwrap();
        let pool = sqlx::PgPool::connect(&common::postgres_base_url().unwrap())
            .await
            .unwrap();
        let states = |schema: String| {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, String>(&format!(
                    "SELECT id || ' ' || state FROM {schema}.porter_jobs ORDER BY id"
                ))
                .fetch_all(&pool)
                .await
                .unwrap()
            }
        };
        assert_eq!(
            states(a.clone()).await,
            ["1 completed", "2 available", "4 pending"],
            "A's child of the completed parent is released"
        );
        assert_eq!(
            states(b.clone()).await,
            ["1 available", "2 pending", "3 available", "4 pending"],
            "B's jobs are as they were"
        );
        assert_eq!(
            count(&pool, &format!("SELECT count(*) FROM {b}.porter_job_deps")).await,
            2,
            "B's edges are all there"
        );
        assert_eq!(
            count(
                &pool,
                &format!(
                    "SELECT count(*) FROM {a}.porter_job_deps WHERE parent_id = 3 OR child_id = 3"
                )
            )
            .await,
            0,
            "the deleted job's edges go with it"
        );
        // Every function of porter's reading its tables resolves them in its schema.
        let unset: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = '{a}' AND p.proname <> 'porter_now'
               AND NOT coalesce(p.proconfig, '{{}}') @> ARRAY['search_path={a}, pg_temp']
             ORDER BY 1"
        ))
        .fetch_all(&pool)
        .await
        .unwrap();
        assert!(
            unset.is_empty(),
            "functions without porter's path: {unset:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(porter_pg_tests),
        ignore = "PORTER_TEST_DATABASE_URL not set at build time"
    )]
    async fn concurrent_first_opens_succeed_under_serializable_by_default() {
        // A database (or role) whose transactions default to SERIALIZABLE: a process waiting
        // for the migration lock must still see what the one before it applied.
        let (_, name) = schema().await;
        let url = with_options(&format!(
            "-c search_path={name} -c default_transaction_isolation=serializable"
        ));
        let opens = (0..4).map(|_| {
            let url = url.clone();
            tokio::spawn(async move { porter::store::open(&url).await.map(drop) })
        });
        for open in futures::future::join_all(opens).await {
            open.unwrap().expect("every concurrent open succeeds");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(porter_pg_tests),
        ignore = "PORTER_TEST_DATABASE_URL not set at build time"
    )]
    async fn a_schema_reset_that_leaves_porter_now_behind_migrates_again() {
        // A reset script that drops the tables (and the bookkeeping) but not the function.
        let (url, _) = schema().await;
        porter::store::open(&url).await.unwrap();
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::raw_sql(
            "DROP TABLE porter_jobs, porter_queues, porter_workers, porter_periodic,
                        porter_job_outputs, porter_job_deps, porter_migrations CASCADE",
        )
        .execute(&pool)
        .await
        .unwrap();
        porter::store::open(&url)
            .await
            .expect("migrates again over the function left behind");
    }
}

/// A fresh database named `name` with porter's core migrations applied up to `version` and
/// recorded as porter records them, as an older porter left it.
async fn database_at(db: &TestDb, name: &str, version: i64) -> (String, Raw) {
    let url = fresh_url(db, name).await;
    let raw = migrated_to(&url, version).await;
    (url, raw)
}

/// The database at `url`, which porter has not opened, with porter's core migrations applied
/// up to `version` and recorded as porter records them; a plain connection to it.
async fn migrated_to(url: &str, version: i64) -> Raw {
    use porter::store::migrations::CORE;
    let raw = Raw::connect(url).await;
    let sqlite = matches!(raw, Raw::Sqlite(_));
    raw.exec(if sqlite {
        "PRAGMA journal_mode = WAL;
         CREATE TABLE porter_migrations (set_name TEXT NOT NULL, version INTEGER NOT NULL,
             name TEXT NOT NULL, applied_at TEXT NOT NULL, PRIMARY KEY (set_name, version));"
    } else {
        "CREATE TABLE porter_migrations (set_name TEXT NOT NULL, version BIGINT NOT NULL,
             name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (set_name, version));"
    })
    .await;
    for m in CORE.migrations.iter().filter(|m| m.version <= version) {
        raw.exec(if sqlite { m.sqlite } else { m.postgres }).await;
        raw.exec(&format!(
            "INSERT INTO porter_migrations (set_name, version, name, applied_at)
             VALUES ('porter', {}, '{}', '2026-01-01T00:00:00.000Z')",
            m.version, m.name
        ))
        .await;
    }
    raw
}

/// A claim of up to `limit` jobs of `kind` on `default`, by worker `w`.
fn claim(kind: &str, limit: u32) -> porter::store::JobClaimParams {
    porter::store::JobClaimParams {
        queue: "default".into(),
        kinds: vec![kind.into()],
        limit,
        worker_id: "w".into(),
    }
}

/// Claims the next job of kind `p` on `default` and completes it; its id.
async fn complete_next_p(store: &porter::store::Store) -> i64 {
    let got = store.job_claim(claim("p", 1)).await.unwrap();
    assert_eq!(got.len(), 1);
    store.job_complete_many(vec![got[0].fence()]).await.unwrap();
    got[0].id
}

backend_case! {
    /// A database migrated up to 13 (before dependencies were counted per statement on
    /// PostgreSQL, migration 14), holding children that wait, upgrades in place: the parents'
    /// ends are counted by the new trigger and each child runs after its last parent, once.
    async fn waiting_dependents_upgrade_in_place(db: TestDb) {
        let (url, raw) = database_at(&db, "before-14", 13).await;
        // Parents 1 and 2 due; 3 waits for 1; 4 waits for 1 and 2; 5 waited for 6, which
        // ended before the upgrade (its edge counted), and waits for 2 still.
        raw.exec(
            "INSERT INTO porter_jobs (id, kind, state, has_dependents, waiting_for) VALUES
                 (1, 'p', 'available', true, 0), (2, 'p', 'available', true, 0),
                 (3, 'c', 'pending', false, 1), (4, 'c', 'pending', false, 2),
                 (5, 'c', 'pending', false, 1), (6, 'p', 'completed', true, 0);
             INSERT INTO porter_job_deps (child_id, parent_id, after_any, resolved) VALUES
                 (3, 1, false, false), (4, 1, false, false), (4, 2, false, false),
                 (5, 6, false, true), (5, 2, false, false);",
        )
        .await;
        let store = porter::store::open(&url).await.expect("porter upgrades the database");
        assert_eq!(raw.porter_versions().await, sorted_sets());
        let state = |id: i64| {
            let store = store.clone();
            async move { store.job_get(id).await.unwrap().unwrap().state }
        };
        let complete_one = || complete_next_p(&store);
        assert_eq!(complete_one().await, 1);
        assert_eq!(state(3).await, JobState::Available);
        assert_eq!(state(4).await, JobState::Pending);
        assert_eq!(state(5).await, JobState::Pending);
        assert_eq!(complete_one().await, 2);
        assert_eq!(state(4).await, JobState::Available);
        assert_eq!(state(5).await, JobState::Available);
    }
}

backend_case! {
    /// A database migrated up to 35 whose waiting jobs have resolved edges (one to a parent that
    /// had ended when the job was inserted; one to a parent retried while the job waited, whose
    /// earlier end stood) upgrades in place: each job waits for those parents' next ends, as a
    /// job inserted or retried since does (migration 0036).
    async fn waiting_children_of_retried_parents_upgrade_by_0036(db: TestDb) {
        let (url, raw) = database_at(&db, "before-36", 35).await;
        // 1 completed and was retried (it runs again, priority 2: claimed last); 3 waits for it
        // and for 2. 4 completed before 5 was inserted; 5 waits for it and for 2.
        raw.exec(
            "INSERT INTO porter_jobs (id, kind, state, priority, has_dependents, waiting_for) VALUES
                 (1, 'p', 'available', 2, true, 0), (2, 'p', 'available', 1, true, 0),
                 (3, 'c', 'pending', 1, false, 1), (4, 'p', 'completed', 1, true, 0),
                 (5, 'c', 'pending', 1, false, 1);
             INSERT INTO porter_job_deps (child_id, parent_id, after_any, resolved) VALUES
                 (3, 1, false, true), (3, 2, false, false), (5, 4, false, true), (5, 2, false, false);",
        )
        .await;
        let store = porter::store::open(&url).await.expect("porter upgrades the database");
        let state = |id: i64| {
            let store = store.clone();
            async move { store.job_get(id).await.unwrap().unwrap().state }
        };
        let complete_one = || complete_next_p(&store);
        store.job_retry(4).await.unwrap();
        assert_eq!(complete_one().await, 2);
        assert_eq!(state(3).await, JobState::Pending, "3 waits for 1's run");
        assert_eq!(state(5).await, JobState::Pending, "5 waits for 4's new run");
        assert_eq!(complete_one().await, 4);
        assert_eq!(state(5).await, JobState::Available);
        assert_eq!(complete_one().await, 1);
        assert_eq!(state(3).await, JobState::Available);
    }
}

backend_case! {
    /// A database migrated up to 45 holding a child given back unstarted before 0044 marked
    /// such entries: migration 0046 marks its entry, so a retry of its parent makes it wait as
    /// for a child given back since. (0044 alone left such children looking started.) A child
    /// stopped by a shutdown is left as it was.
    async fn children_given_back_before_0044_are_marked_by_0046(db: TestDb) {
        let (url, raw) = database_at(&db, "before-46", 45).await;
        let entry = |error: &str| {
            format!(r#"[{{"attempt":1,"at":"2026-01-01T00:00:00.000Z","error":"{error}"}}]"#)
        };
        raw.exec(&format!(
            "INSERT INTO porter_jobs (id, kind, state, has_dependents, attempt, max_attempts, errors, finalized_at) VALUES
                 (1, 'p', 'completed', true, 1, 25, '[]', '2026-01-01T00:00:00.000Z');
             INSERT INTO porter_jobs (id, kind, state, attempt, max_attempts, errors) VALUES
                 (2, 'c', 'available', 1, 26, '{}'), (3, 'c', 'available', 1, 26, '{}');
             INSERT INTO porter_job_deps (child_id, parent_id, after_any, resolved) VALUES
                 (2, 1, false, false), (3, 1, false, false);",
            entry(porter::runtime::GIVEN_BACK),
            entry("worker shut down"),
        ))
        .await;
        let store = porter::store::open(&url).await.expect("porter upgrades the database");
        let row = store.job_get(2).await.unwrap().unwrap();
        assert!(row.errors[0].unstarted, "{row:?}");
        store.job_retry(1).await.unwrap();
        assert_eq!(store.job_get(2).await.unwrap().unwrap().state, JobState::Pending, "waits for 1's new run");
        let row = store.job_get(3).await.unwrap().unwrap();
        assert_eq!((row.state, row.errors[0].unstarted), (JobState::Available, false), "it started");
    }
}

backend_case! {
    /// A database at version 46 holding children given back unstarted before 0044 that 0046
    /// did not mark on both backends:
    /// * one whose history also holds entries that are not objects (only another program
    ///   writes those): PostgreSQL's 0046 marked such a give-back and SQLite's passed the whole
    ///   history by;
    /// * one that was running when 0046 ran (so neither marked it), given back since with a
    ///   marked entry: its first entry is still unmarked.
    ///
    /// 0047 marks both on both backends, keeping every other entry as it was (a string that
    /// reads as JSON stays a string), so a retry of their parent makes both wait.
    async fn children_given_back_before_0044_that_0046_passed_by_are_marked_by_0047(db: TestDb) {
        let (url, raw) = database_at(&db, "before-47", 46).await;
        let given_back = |attempt: u32, mark: &str| {
            format!(
                r#"{{"attempt":{attempt},"at":"2026-01-01T00:00:00.000Z","error":"{}"{mark}}}"#,
                porter::runtime::GIVEN_BACK
            )
        };
        let mixed = format!(r#"["x","[1]",5,1.5,true,false,null,[1,{{"a":2}}],{{}},{}]"#, given_back(1, ""));
        let later = format!(r#"[{},{}]"#, given_back(1, ""), given_back(2, r#","unstarted":true"#));
        raw.exec(&format!(
            "INSERT INTO porter_jobs (id, kind, state, has_dependents, attempt, max_attempts, errors, finalized_at) VALUES
                 (1, 'p', 'completed', true, 1, 25, '[]', '2026-01-01T00:00:00.000Z');
             INSERT INTO porter_jobs (id, kind, state, attempt, max_attempts, errors) VALUES
                 (2, 'c', 'available', 1, 26, '{mixed}'), (3, 'c', 'available', 2, 27, '{later}');
             INSERT INTO porter_job_deps (child_id, parent_id, after_any, resolved) VALUES
                 (2, 1, false, false), (3, 1, false, false);"
        ))
        .await;
        let store = porter::store::open(&url).await.expect("porter upgrades the database");
        for (id, history, marked) in [(2, &mixed, 9), (3, &later, 0)] {
            let sql = match raw {
                Raw::Sqlite(_) => format!("SELECT errors FROM porter_jobs WHERE id = {id}"),
                Raw::Postgres(_) => format!("SELECT errors::text FROM porter_jobs WHERE id = {id}"),
            };
            let got: serde_json::Value = serde_json::from_str(&raw.texts(&sql).await[0]).unwrap();
            let mut want: serde_json::Value = serde_json::from_str(history).unwrap();
            want[marked]["unstarted"] = serde_json::Value::Bool(true);
            assert_eq!(got, want, "job {id}");
        }
        store.job_retry(1).await.unwrap();
        for id in [2, 3] {
            assert_eq!(store.job_get(id).await.unwrap().unwrap().state, JobState::Pending, "{id} waits for 1's new run");
        }
    }
}

/// A PostgreSQL database migrated up to 32 that holds a job whose `errors` is not a JSON array
/// (a plain INSERT's mistake, which made every claim of its queue fail): migration 0033 empties
/// that history, so the job reads, claims and completes again, and the check it adds refuses
/// the next such row. (Without the repair, the check would also have refused every update of
/// the old row: its cancel, its retry, the claim that clears it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(porter_pg_tests),
    ignore = "PORTER_TEST_DATABASE_URL not set: Postgres half skipped"
)]
async fn a_job_whose_errors_porter_could_not_read_is_repaired_by_0033() {
    let db = common::postgres().await;
    let (url, raw) = database_at(&db, "before-33", 32).await;
    raw.exec(
        "INSERT INTO porter_jobs (kind, errors) VALUES ('noop', '{}'); -- job 1
         INSERT INTO porter_jobs (kind, errors) VALUES ('noop', '[]'); -- job 2",
    )
    .await;
    let store = porter::store::open(&url)
        .await
        .expect("porter upgrades the database");
    assert!(store.job_get(1).await.unwrap().unwrap().errors.is_empty());
    let got = store
        .job_claim(claim("noop", 10))
        .await
        .expect("the queue claims again");
    assert_eq!(got.len(), 2);
    let fences = got.iter().map(|j| j.fence()).collect();
    assert_eq!(
        store.job_complete_many(fences).await.unwrap(),
        vec![true, true]
    );
    let Raw::Postgres(pool) = &raw else {
        unreachable!("a PostgreSQL database")
    };
    let refused = sqlx::query("INSERT INTO porter_jobs (kind, errors) VALUES ('noop', '{}')")
        .execute(pool)
        .await
        .expect_err("refused");
    assert!(
        refused.to_string().contains("porter_jobs_errors_array"),
        "{refused}"
    );
}

/// A PostgreSQL database migrated up to 36 that holds jobs a plain INSERT gave times porter
/// could not read (±infinity, which crashed the worker process in the driver) or attempt
/// counts at the top of `integer` (which failed every claim of their queue): 0037 repairs the
/// times and refuses the next such time; the claims pass the counts by, so the queue claims and
/// completes its other jobs, and a retry of such a job (alone or in a bulk) does not overflow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(porter_pg_tests),
    ignore = "PORTER_TEST_DATABASE_URL not set: Postgres half skipped"
)]
async fn jobs_whose_times_or_attempts_porter_could_not_read_are_repaired_by_0037() {
    let db = common::postgres().await;
    let (url, raw) = database_at(&db, "before-37", 36).await;
    raw.exec(
        "INSERT INTO porter_jobs (kind, scheduled_at) VALUES ('noop', '-infinity'); -- job 1
         INSERT INTO porter_jobs (kind, attempt, max_attempts) VALUES ('noop', 2147483647, 2147483647); -- 2
         INSERT INTO porter_jobs (kind, created_at) VALUES ('noop', 'infinity'); -- 3
         INSERT INTO porter_jobs (kind, state, scheduled_at) VALUES ('noop', 'scheduled', 'infinity'); -- 4
         INSERT INTO porter_jobs (kind) VALUES ('noop'); -- 5
         INSERT INTO porter_jobs (kind, max_attempts) VALUES ('noop', 2147483647); -- 6
         INSERT INTO porter_jobs (kind, state, attempt, finalized_at) VALUES ('noop', 'discarded', 2147483647, now()); -- 7",
    )
    .await;
    let store = porter::store::open(&url)
        .await
        .expect("porter upgrades the database");
    let listed = store
        .job_list(Default::default())
        .await
        .expect("the list reads");
    assert_eq!(listed.len(), 7);
    let got = store
        .job_claim(claim("noop", 10))
        .await
        .expect("the queue claims again");
    let mut ids: Vec<i64> = got.iter().map(|j| j.id).collect();
    ids.sort();
    assert_eq!(
        ids,
        [1, 3, 5],
        "not the one due at the end of time, nor those of huge counts"
    );
    let fences = got.iter().map(|j| j.fence()).collect();
    assert_eq!(
        store.job_complete_many(fences).await.unwrap(),
        vec![true; 3]
    );
    let four = store.job_get(4).await.unwrap().unwrap();
    assert_eq!(
        four.scheduled_at.to_rfc3339(),
        "9999-12-31T23:59:59.999+00:00"
    );
    let retried = store
        .driver()
        .job_retry_many(vec![7, 1], vec![])
        .await
        .expect("the bulk retry goes through");
    assert_eq!(retried.len(), 2);
    let Raw::Postgres(pool) = &raw else {
        unreachable!("a PostgreSQL database")
    };
    for values in [
        "(kind, scheduled_at) VALUES ('noop', '-infinity')",
        "(kind, scheduled_at) VALUES ('noop', '200000-01-01Z')",
        "(kind, created_at) VALUES ('noop', 'infinity')",
    ] {
        let refused = sqlx::query(&format!("INSERT INTO porter_jobs {values}"))
            .execute(pool)
            .await
            .expect_err(values);
        assert!(
            refused
                .to_string()
                .contains("porter_jobs_times_porter_reads"),
            "{values}: {refused}"
        );
    }
}

/// A PostgreSQL database migrated up to 53 whose jobs hold concurrency keys over 255 bytes
/// (a plain INSERT's: keys that compress went into the index of running jobs and ran): 0054
/// refuses the next insert of such a job to run, and leaves the rows there as they are, each
/// still written as any job. (Its first version, of 6 Dec, added a CHECK instead, which every
/// later version of such a row failed: a running one could no longer be completed, nor rescued,
/// and it failed every pass of the lost workers' rescue; and it discarded the unfinished ones,
/// which ran, cancelling their children.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(porter_pg_tests),
    ignore = "PORTER_TEST_DATABASE_URL not set: Postgres half skipped"
)]
async fn jobs_holding_concurrency_keys_over_255_bytes_are_still_written_after_0054() {
    let db = common::postgres().await;
    let (url, raw) = database_at(&db, "before-54", 53).await;
    raw.exec(
        "INSERT INTO porter_workers (id, host, pid, lease_ms, heartbeat_at)
             VALUES ('gone', 'h', 1, 15000, now() - interval '1 hour');
         INSERT INTO porter_jobs (kind, concurrency_key) VALUES ('noop', repeat('a', 5000)); -- job 1
         INSERT INTO porter_jobs (kind, concurrency_key) VALUES ('noop', repeat('b', 300)); -- 2
         INSERT INTO porter_jobs (kind, concurrency_key, state, finalized_at, attempt)
             VALUES ('noop', repeat('c', 300), 'discarded', now(), 1); -- 3
         INSERT INTO porter_jobs (kind) VALUES ('noop'); -- 4
         UPDATE porter_jobs SET state = 'running', attempt = 1, attempted_by = 'gone',
             attempted_at = now() - interval '1 hour' WHERE id IN (1, 4);",
    )
    .await;
    let store = porter::store::open(&url)
        .await
        .expect("porter upgrades the database");
    let rescued = store
        .job_rescue(porter::store::JobRescueParams {
            ending: Vec::new(),
            by: None,
            lease: std::time::Duration::from_secs(15),
            stuck_after: Vec::new(),
            limit: 100,
        })
        .await
        .expect("the rescue pass goes through");
    assert_eq!(rescued.retried, 2);
    let got = store
        .job_claim(claim("noop", 10))
        .await
        .expect("the queue claims");
    assert_eq!(got.len(), 3, "jobs 1, 2 and 4 run again");
    let fences = got.iter().map(|j| j.fence()).collect();
    assert_eq!(
        store.job_complete_many(fences).await.unwrap(),
        vec![true; 3]
    );
    assert_eq!(store.job_retry(3).await.unwrap().state, JobState::Available);
    let Raw::Postgres(pool) = &raw else {
        unreachable!("a PostgreSQL database")
    };
    let refused = sqlx::query(
        "INSERT INTO porter_jobs (kind, concurrency_key) VALUES ('noop', repeat('d', 256))",
    )
    .execute(pool)
    .await
    .expect_err("refused");
    assert!(
        refused
            .to_string()
            .contains("porter_jobs_concurrency_key_bytes"),
        "{refused}"
    );
    sqlx::query(
        "INSERT INTO porter_jobs (kind, concurrency_key) VALUES ('noop', repeat('d', 255))",
    )
    .execute(pool)
    .await
    .expect("255 bytes go in");
}

backend_case! {
    /// A database migrated up to 27 (workflow steps in an index of porter_jobs), holding two
    /// workflows, upgrades in place to the table of steps (0028): each workflow shows its
    /// steps and edges, lists with its counts, cancels its unfinished steps, and goes with its
    /// last job.
    async fn workflows_move_to_their_steps_table_in_place(db: TestDb) {
        let (url, raw) = database_at(&db, "before-28", 27).await;
        // Workflow 1: "first" (job 1, due) and "second" (job 2, waits for 1). Workflow 2:
        // "only" (job 3, completed). Job 4 is of no workflow.
        raw.exec(
            "INSERT INTO porter_workflows (id, name, created_at) VALUES
                 (1, 'flow', '2026-01-01T00:00:00.000Z'), (2, 'done', '2026-01-01T00:00:00.000Z');
             INSERT INTO porter_jobs (id, kind, state, has_dependents, waiting_for, workflow_id,
                                      workflow_step, finalized_at) VALUES
                 (1, 'p', 'available', true, 0, 1, 'first', NULL),
                 (2, 'c', 'pending', false, 1, 1, 'second', NULL),
                 (3, 'p', 'completed', false, 0, 2, 'only', '2026-01-01T00:00:00.000Z'),
                 (4, 'p', 'available', false, 0, NULL, NULL, NULL);
             INSERT INTO porter_job_deps (child_id, parent_id, after_any, resolved) VALUES
                 (2, 1, false, false);",
        )
        .await;
        let store = porter::store::open(&url).await.expect("porter upgrades the database");
        assert_eq!(raw.porter_versions().await, sorted_sets());
        assert!(raw.has_table("porter_workflow_steps").await);

        let flow = store.workflow_get(1).await.unwrap().expect("workflow 1 is kept");
        let steps: Vec<(String, i64, JobState, Vec<String>)> = flow
            .steps
            .iter()
            .map(|s| (s.step.clone(), s.job_id, s.state, s.after.clone()))
            .collect();
        assert_eq!(
            steps,
            vec![
                ("first".into(), 1, JobState::Available, vec![]),
                ("second".into(), 2, JobState::Pending, vec!["first".into()]),
            ]
        );
        let listed = store.workflow_list(None, Some(10)).await.unwrap();
        let totals: Vec<(i64, i64)> = listed.iter().map(|w| (w.id, w.total)).collect();
        assert_eq!(totals, vec![(2, 1), (1, 2)]);
        assert_eq!(
            store.job_workflow(2).await.unwrap().map(|w| (w.id, w.step)),
            Some((1, "second".to_string()))
        );

        let cancelled = store.workflow_cancel(1).await.unwrap();
        assert_eq!((cancelled.cancelled, cancelled.cancel_requested), (2, 0));
        assert_eq!(store.job_get(4).await.unwrap().unwrap().state, JobState::Available);

        // Its last job deleted, workflow 2 goes; workflow 1 keeps its other step.
        raw.exec("DELETE FROM porter_jobs WHERE id IN (1, 3)").await;
        assert!(store.workflow_get(2).await.unwrap().is_none());
        let flow = store.workflow_get(1).await.unwrap().expect("workflow 1 has a job left");
        assert_eq!(flow.steps.iter().map(|s| s.job_id).collect::<Vec<_>>(), vec![2]);
    }
}

/// A time `secs` from now (negative: ago) as SQL on the backend of `raw`, in the format each
/// stores times in.
fn sql_time(raw: &Raw, secs: i64) -> String {
    match raw {
        Raw::Sqlite(_) => format!("strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '{secs:+} seconds')"),
        Raw::Postgres(_) => format!("now() + interval '{secs} seconds'"),
    }
}

backend_case! {
    /// Every migration since porter 0.1 (0005 to the latest: outputs, limits, waits, workflows,
    /// batches, the dependency triggers, their hot-path form, the indexes of running jobs and
    /// of available ones) upgrades a database full of that version's jobs in place: each keeps its meaning (state, attempts, history, unique
    /// key, queue pause, periodic slot, the application's rows) and runs to the end it would
    /// have reached before.
    async fn a_porter_0_1_database_full_of_jobs_migrates_and_each_job_runs_to_its_end(db: TestDb) {
        let url = fresh_url(&db, "porter-0.1-full").await;
        porter_0_1_database(&url).await;
        let raw = Raw::connect(&url).await;
        if let Raw::Postgres(_) = &raw {
            AppMigrations::new(20240101000000).run(&url, true).await.unwrap();
        }
        let (hour_ago, minute_ago, day_on) =
            (sql_time(&raw, -3600), sql_time(&raw, -60), sql_time(&raw, 86_400));
        let old_error = r#"[{"attempt":1,"at":"2026-01-01T00:00:00.000Z","error":"smtp is down"}]"#;
        // One job per state porter 0.1 knew, in the ids 1 to 9 in this order.
        raw.exec(&format!(
            "INSERT INTO porter_jobs (kind, queue, args, state, attempt, max_attempts, errors,
                                      scheduled_at, attempted_at, finalized_at, attempted_by, unique_key)
             VALUES
             ('noop', 'default', '{{\"n\":1}}', 'available', 0, 25, '[]', {minute_ago}, NULL, NULL, NULL, 'u-available'),
             ('noop', 'default', '{{\"n\":2}}', 'scheduled', 0, 25, '[]', {day_on}, NULL, NULL, NULL, 'u-future'),
             ('noop', 'default', '{{\"n\":3}}', 'scheduled', 0, 25, '[]', {minute_ago}, NULL, NULL, NULL, NULL),
             ('noop', 'default', '{{\"n\":4}}', 'retryable', 1, 25, '{old_error}', {minute_ago}, {hour_ago}, NULL, 'gone', NULL),
             ('noop', 'default', '{{\"n\":5}}', 'running', 1, 25, '[]', {hour_ago}, {hour_ago}, NULL, 'gone', NULL),
             ('noop', 'default', '{{\"n\":6}}', 'completed', 1, 25, '[]', {hour_ago}, {hour_ago}, {hour_ago}, 'gone', 'u-done'),
             ('noop', 'default', '{{\"n\":7}}', 'cancelled', 0, 25, '[]', {hour_ago}, NULL, {hour_ago}, NULL, NULL),
             ('noop', 'default', '{{\"n\":8}}', 'discarded', 3, 3, '{old_error}', {hour_ago}, {hour_ago}, {hour_ago}, 'gone', NULL),
             ('noop', 'held', '{{\"n\":9}}', 'available', 0, 25, '[]', {minute_ago}, NULL, NULL, NULL, NULL);
             INSERT INTO porter_queues (name, paused_at) VALUES ('held', {hour_ago});
             INSERT INTO porter_periodic (name, last_slot) VALUES ('hourly', 1764547200000);
             INSERT INTO tablos (id, name) VALUES ('6f1c5f44-2f7b-4c3e-9d55-8a0b8e1c1a01', 'kept');"
        ))
        .await;

        let store = porter::store::open(&url).await.expect("porter migrates it");
        let client = porter::Client::new(store.clone());
        let before = client.list(Default::default()).await.unwrap();
        assert_eq!(before.len(), 9);
        let job = |id: i64| before.iter().find(|j| j.id == id).unwrap().clone();
        let expected_states = [
            JobState::Available,
            JobState::Scheduled,
            JobState::Scheduled,
            JobState::Retryable,
            JobState::Running,
            JobState::Completed,
            JobState::Cancelled,
            JobState::Discarded,
            JobState::Available,
        ];
        for (id, state) in (1..).zip(expected_states) {
            let j = job(id);
            assert_eq!((j.state, j.args["n"].as_i64()), (state, Some(id)), "{j:?}");
        }
        assert_eq!(job(4).errors.len(), 1);
        assert_eq!(job(4).errors[0].error, "smtp is down");
        assert_eq!((job(8).attempt, job(8).max_attempts, job(8).errors.len()), (3, 3, 1));
        assert_eq!(job(1).unique_key.as_deref(), Some("u-available"));

        // Unique keys: an unfinished job's key still holds, a finished one's is free.
        let held = client
            .insert(&Noop {}, Some(porter::InsertOpts { unique_key: Some("u-future".into()), ..Default::default() }))
            .await
            .unwrap();
        assert!(!held.inserted && held.job.id == 2, "{held:?}");
        let freed = client
            .insert(&Noop {}, Some(porter::InsertOpts { unique_key: Some("u-done".into()), ..Default::default() }))
            .await
            .unwrap();
        assert!(freed.inserted, "{freed:?}");
        // The periodic slot is taken; the next one is not.
        let periodic = |slot: i64| porter::store::PeriodicEnqueueParams {
            name: "hourly".into(),
            slot,
            job: porter::store::JobInsertParams::new("noop", serde_json::json!({}), Default::default()).unwrap(),
        };
        assert!(store.periodic_enqueue(periodic(1764547200000)).await.unwrap().is_none());
        let next = store.periodic_enqueue(periodic(1764550800000)).await.unwrap();
        let new_periodic = next.expect("the next slot inserts its job").job.id;
        // The queue stays paused; the job of the lost worker is rescued.
        let queues = store.queue_list().await.unwrap();
        assert!(queues.iter().any(|q| q.name == "held" && q.paused_at.is_some()), "{queues:?}");
        let rescued = store
            .job_rescue(porter::store::JobRescueParams { ending: Vec::new(), by: None,
                lease: std::time::Duration::from_secs(15),
                stuck_after: Vec::new(),
                limit: 100,
            })
            .await
            .unwrap();
        assert_eq!(rescued.retried, 1, "{rescued:?}");

        let workers = || {
            let mut w = Workers::new();
            w.add(NoopWorker).unwrap();
            w
        };
        let ran = porter::testing::run_available(&store, workers(), "default").await.unwrap();
        let ran: Vec<(i64, JobState, i32)> = ran.iter().map(|o| (o.id, o.state, o.attempt)).collect();
        let new_unique = freed.job.id;
        assert_eq!(
            ran,
            vec![
                (1, JobState::Completed, 1),
                (3, JobState::Completed, 1),
                (4, JobState::Completed, 2),
                (5, JobState::Completed, 2),
                (new_unique, JobState::Completed, 1),
                (new_periodic, JobState::Completed, 1),
            ]
        );
        let after = client.get(4).await.unwrap().unwrap();
        assert_eq!(after.errors.len(), 1, "the retried job keeps its history: {after:?}");
        let after = client.get(5).await.unwrap().unwrap();
        assert_eq!(after.errors.last().map(|e| e.error.as_str()), Some("worker lost"));
        for id in [2, 6, 7, 8] {
            let (was, now) = (job(id), client.get(id).await.unwrap().unwrap());
            assert_eq!(
                (was.state, was.attempt, was.finalized_at, was.errors.len()),
                (now.state, now.attempt, now.finalized_at, now.errors.len()),
                "job {id} is as it was"
            );
        }
        assert_eq!(client.get(9).await.unwrap().unwrap().state, JobState::Available);
        store.queue_resume("held").await.unwrap();
        let ran = porter::testing::run_available(&store, workers(), "held").await.unwrap();
        assert_eq!(ran.iter().map(|o| (o.id, o.state)).collect::<Vec<_>>(), vec![(9, JobState::Completed)]);
        assert_eq!(raw.texts("SELECT name FROM tablos").await, vec!["kept".to_string()]);
    }
}

backend_case! {
    /// A database migrated up to 40 holding a job in every state keeps each job's meaning across
    /// 0041 (porter_jobs_fetch of available jobs only, porter_jobs_finalized with `queue`,
    /// porter_jobs_pending): the counts read every state from its new index, a finished job
    /// without a finalized_at (another program's row) among them; the claim takes the
    /// available and the due retryable job and leaves the scheduled one; the running job
    /// completes by its fence; the waiting child runs after its parent.
    async fn jobs_in_every_state_keep_their_meaning_across_0041(db: TestDb) {
        let (url, raw) = database_at(&db, "before-41", 40).await;
        raw.exec(
            "INSERT INTO porter_jobs (id, kind, queue, state, scheduled_at, attempt, attempted_by,
                                      finalized_at, has_dependents, waiting_for) VALUES
                 (1, 'p', 'default', 'available', '2000-01-01T00:00:00.000Z', 0, NULL, NULL, true, 0),
                 (2, 'p', 'default', 'scheduled', '2999-01-01T00:00:00.000Z', 0, NULL, NULL, false, 0),
                 (3, 'p', 'default', 'retryable', '2000-01-01T00:00:01.000Z', 1, 'w', NULL, false, 0),
                 (4, 'p', 'default', 'running', '2000-01-01T00:00:00.000Z', 1, 'w', NULL, false, 0),
                 (5, 'c', 'default', 'pending', '2000-01-01T00:00:00.000Z', 0, NULL, NULL, false, 1),
                 (6, 'p', 'default', 'completed', '2000-01-01T00:00:00.000Z', 1, 'w', '2000-01-01T00:00:02.000Z', false, 0),
                 (7, 'p', 'default', 'cancelled', '2000-01-01T00:00:00.000Z', 0, NULL, '2000-01-01T00:00:02.000Z', false, 0),
                 (8, 'p', 'default', 'discarded', '2000-01-01T00:00:00.000Z', 25, 'w', '2000-01-01T00:00:02.000Z', false, 0),
                 (9, 'p', 'other', 'completed', '2000-01-01T00:00:00.000Z', 1, 'w', NULL, false, 0);
             INSERT INTO porter_job_deps (child_id, parent_id, after_any, resolved) VALUES (5, 1, false, false);",
        )
        .await;
        let store = porter::store::open(&url).await.expect("porter upgrades the database");
        assert_eq!(raw.porter_versions().await, sorted_sets());
        let counts = store.job_counts().await.unwrap();
        let default = &counts.queues["default"];
        for state in [
            JobState::Available,
            JobState::Scheduled,
            JobState::Retryable,
            JobState::Running,
            JobState::Pending,
            JobState::Completed,
            JobState::Cancelled,
            JobState::Discarded,
        ] {
            assert_eq!(default[&state], 1, "{state:?} in default: {counts:?}");
        }
        assert_eq!(counts.queues["other"][&JobState::Completed], 1, "{counts:?}");
        assert_eq!(counts.total.values().sum::<i64>(), 9, "{counts:?}");

        let mut claimed: Vec<i64> = store
            .job_claim(claim("p", 10))
            .await
            .unwrap()
            .iter()
            .map(|j| j.id)
            .collect();
        claimed.sort();
        assert_eq!(claimed, vec![1, 3], "the available and the due retryable job");
        let fences = [1, 3, 4].map(|id| {
            let store = store.clone();
            async move { store.job_get(id).await.unwrap().unwrap().fence() }
        });
        let mut got = Vec::new();
        for f in fences {
            got.push(f.await);
        }
        assert_eq!(store.job_complete_many(got).await.unwrap(), vec![true, true, true]);
        let state = |id: i64| {
            let store = store.clone();
            async move { store.job_get(id).await.unwrap().unwrap().state }
        };
        assert_eq!(state(2).await, JobState::Scheduled);
        assert_eq!(state(5).await, JobState::Available, "5 waited for 1 only");
        let counts = store.job_counts().await.unwrap();
        assert_eq!(counts.queues["default"][&JobState::Completed], 4, "{counts:?}");
        assert_eq!(counts.queues["default"][&JobState::Available], 1, "{counts:?}");
        assert_eq!(counts.queues["default"][&JobState::Running], 0, "{counts:?}");
        assert_eq!(counts.queues["default"][&JobState::Pending], 0, "{counts:?}");
    }
}
