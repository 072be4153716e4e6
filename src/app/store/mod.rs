//! The tablo app's storage: one trait, [`TabloStore`], over the app's own tables (`tablos`,
//! `tablo_files`, `tablo_file_uploads`, `tablo_store_mark`), with a SQLite and a PostgreSQL implementation that
//! keep their SQL beside them (`sqlite/sql/*.sql`, `postgres/sql/*.sql`).
//!
//! The app keeps its tables in the queue's database, and reaches that database the way any
//! application does: through [`Store::database`], the handle the queue core gives its users
//! for their own SQL. Jobs it enqueues with its own writes go through the core's public
//! transactional insert ([`Client::insert_tx_sqlite`](crate::Client::insert_tx_sqlite),
//! [`Client::insert_tx_pg`](crate::Client::insert_tx_pg)), so they exist if and only if the
//! app's transaction commits.
//!
//! Methods are named noun first and take one params struct where they take more than one
//! value; each means the same on both backends (`tests/app.rs` runs one suite on both).

pub mod sqlite;

#[cfg(feature = "postgres")]
pub mod postgres;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::migrations::{Migration, MigrationSet};
use crate::store::{Backend, Database, InsertResult, Store};

/// A tablo (the application's record that owns files).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TabloRow {
    /// Id.
    pub id: uuid::Uuid,
    /// Name.
    pub name: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A stored file of a tablo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TabloFileRow {
    /// Id.
    pub id: uuid::Uuid,
    /// Owning tablo (which may be gone: then the file is an orphan).
    pub tablo_id: uuid::Uuid,
    /// Object key in the object store.
    pub s3_key: String,
    /// Size in bytes.
    pub size: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// One page of orphan files, in id order.
#[derive(Debug, Clone)]
pub struct TabloFileOrphansParams {
    /// Only files after this id.
    pub after: Option<uuid::Uuid>,
    /// Only orphans of this (deleted) tablo.
    pub tablo_id: Option<uuid::Uuid>,
    /// Page size.
    pub limit: u32,
}

/// One page of a tablo's files, in id order.
#[derive(Debug, Clone)]
pub struct TabloFilePageParams {
    /// The tablo.
    pub tablo_id: uuid::Uuid,
    /// Only files after this id.
    pub after: Option<uuid::Uuid>,
    /// Page size.
    pub limit: u32,
}

/// A page of abandoned uploads: begun longer ago than `older_than` and never committed.
#[derive(Debug, Clone)]
pub struct TabloFileUploadsAbandonedParams {
    /// Uploads begun longer ago than this.
    pub older_than: Duration,
    /// Only uploads after this id.
    pub after: Option<uuid::Uuid>,
    /// Page size.
    pub limit: u32,
}

/// Turn an upload into a file of its tablo.
#[derive(Debug, Clone)]
pub struct TabloFileUploadCommitParams {
    /// The upload (and file) id.
    pub id: uuid::Uuid,
    /// An upload begun longer ago than this is abandoned: the cleanup owns it, and this
    /// commit does nothing.
    pub grace: Duration,
}

/// Delete abandoned uploads' rows.
#[derive(Debug, Clone)]
pub struct TabloFileUploadDeleteParams {
    /// The uploads.
    pub ids: Vec<uuid::Uuid>,
    /// Only those begun longer ago than this.
    pub older_than: Duration,
}

/// The tablo app's storage seam. See the module docs.
#[async_trait::async_trait]
pub trait TabloStore: Send + Sync + 'static {
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// Creates a tablo.
    async fn tablo_insert(&self, name: &str) -> Result<TabloRow>;

    /// One tablo.
    async fn tablo_get(&self, id: uuid::Uuid) -> Result<Option<TabloRow>>;

    /// Deletes a tablo and enqueues its `orphan_file_cleanup` job (args `{"tablo_id": id}`)
    /// in one transaction, through the queue's transactional insert: both happen or neither.
    /// `None` if no such tablo.
    async fn tablo_delete_enqueue(&self, id: uuid::Uuid) -> Result<Option<InsertResult>>;

    /// Records a stored file.
    async fn tablo_file_insert(&self, file: TabloFileRow) -> Result<()>;

    /// A tablo's files, in id order: all of them, however many (for tools and tests; the
    /// API pages with [`TabloStore::tablo_file_page`]).
    async fn tablo_file_list(&self, tablo_id: uuid::Uuid) -> Result<Vec<TabloFileRow>>;

    /// One page of a tablo's files, in id order.
    async fn tablo_file_page(&self, params: TabloFilePageParams) -> Result<Vec<TabloFileRow>>;

    /// A page of files whose tablo is gone.
    async fn tablo_file_orphans(&self, params: TabloFileOrphansParams)
        -> Result<Vec<TabloFileRow>>;

    /// Deletes file rows by id, only if their tablo is still gone; returns how many went.
    async fn tablo_file_delete_many(&self, ids: Vec<uuid::Uuid>) -> Result<u64>;

    /// Records an upload about to write its object (`created_at` is the database's): no file
    /// of the tablo yet, but found by [`TabloStore::tablo_file_uploads_abandoned`] if it is
    /// never committed.
    async fn tablo_file_upload_begin(&self, file: TabloFileRow) -> Result<()>;

    /// Turns an upload into a file of its tablo, in one transaction, unless it was begun
    /// longer ago than the grace, is gone, or its tablo is gone (the upload then stays);
    /// returns the file, or `None`.
    async fn tablo_file_upload_commit(
        &self,
        params: TabloFileUploadCommitParams,
    ) -> Result<Option<TabloFileRow>>;

    /// A page of uploads never committed and begun longer ago than `older_than`, in id order.
    async fn tablo_file_uploads_abandoned(
        &self,
        params: TabloFileUploadsAbandonedParams,
    ) -> Result<Vec<TabloFileRow>>;

    /// Deletes abandoned uploads' rows (only those still past `older_than`); returns how many.
    async fn tablo_file_upload_delete_many(
        &self,
        params: TabloFileUploadDeleteParams,
    ) -> Result<u64>;

    /// Of `keys`, those a file of a tablo that exists names, or an upload begun less than
    /// `grace` ago: objects the orphan cleanup must leave, whatever an orphan row says.
    async fn tablo_file_keys_in_use(
        &self,
        keys: Vec<String>,
        grace: Duration,
    ) -> Result<Vec<String>>;

    /// The database's object store mark, written once by the first call (see
    /// [`crate::app::files::mark_object_store`]).
    async fn tablo_store_mark(&self) -> Result<uuid::Uuid>;

    /// The database's object store mark, if one was ever written.
    async fn tablo_store_mark_get(&self) -> Result<Option<uuid::Uuid>>;
}

/// The tablo app's migrations (`migrations-sqlite/tablo/`, `migrations-postgres/tablo/`), a
/// set of their own beside the queue's, recorded as `tablo` in porter's bookkeeping table. Its
/// first migration creates nothing that is there already: databases of porter 0.1 have these
/// tables from the queue's first migrations.
pub const MIGRATIONS: MigrationSet = MigrationSet {
    name: "tablo",
    migrations: &[
        Migration {
            version: 1,
            name: "tablo_tables",
            sqlite: include_str!("../../../migrations-sqlite/tablo/0001_tablo_tables.sql"),
            postgres: include_str!("../../../migrations-postgres/tablo/0001_tablo_tables.sql"),
        },
        Migration {
            version: 2,
            name: "store_mark_and_keys",
            sqlite: include_str!("../../../migrations-sqlite/tablo/0002_store_mark_and_keys.sql"),
            postgres: include_str!(
                "../../../migrations-postgres/tablo/0002_store_mark_and_keys.sql"
            ),
        },
    ],
};

/// Migrates the app's tables ([`MIGRATIONS`]) in the queue store's database, then gives the
/// tablo store over it. Opening a queue store migrates only the queue's tables; the app, like
/// any application, migrates its own.
pub async fn open(core: Arc<Store>) -> Result<Arc<dyn TabloStore>> {
    migrate(core.as_ref()).await?;
    Ok(from_core(core))
}

/// Applies the app's pending migrations ([`MIGRATIONS`]) to the queue store's database: on
/// SQLite on a connection of its own to the store's file (the runner takes the write lock for
/// each migration), on PostgreSQL on a connection of the store's pool.
pub async fn migrate(core: &Store) -> Result<()> {
    match core.database() {
        Some(Database::Sqlite(s)) => {
            let path = s.path().to_path_buf();
            tokio::task::spawn_blocking(move || {
                let conn =
                    rusqlite::Connection::open(&path).map_err(crate::store::sqlite::map_err)?;
                conn.busy_timeout(crate::store::sqlite::BUSY_TIMEOUT)
                    .map_err(crate::store::sqlite::map_err)?;
                crate::store::sqlite::run_migrations(&conn, &MIGRATIONS)
            })
            .await
            .map_err(|e| Error::Database(e.to_string()))?
        }
        #[cfg(feature = "postgres")]
        Some(Database::Postgres(s)) => {
            let mut conn = s
                .pool()
                .acquire()
                .await
                .map_err(crate::store::postgres::map_err)?;
            crate::store::postgres::run_migrations(&mut conn, &MIGRATIONS).await
        }
        None => Err(no_database(core)),
    }
}

/// The tablo store over a queue store's database (the same SQLite file or PostgreSQL
/// database, through [`Store::database`]), without migrating: the app's tables must be there
/// ([`open`] or [`migrate`] once).
pub fn from_core(core: Arc<Store>) -> Arc<dyn TabloStore> {
    match core.backend() {
        Backend::Sqlite => Arc::new(sqlite::SqliteTabloStore::new(core)),
        #[cfg(feature = "postgres")]
        Backend::Postgres => Arc::new(postgres::PgTabloStore::new(core)),
        #[cfg(not(feature = "postgres"))]
        Backend::Postgres => unreachable!("a Postgres store needs the postgres feature"),
    }
}

/// The error for a queue store that gives no database handle (a test double, say).
fn no_database(core: &Store) -> Error {
    Error::invalid(
        "store",
        format!(
            "this {} store gives no database handle (Store::database), which the tablo app needs",
            core.backend()
        ),
    )
}
