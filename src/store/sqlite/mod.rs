//! SQLite backend: one file, several processes, WAL.
//!
//! * **One writer per process.** A dedicated thread owns the only write connection and runs
//!   every write of this process. It takes whatever writes are waiting (up to
//!   [`MAX_GROUP`], and the heartbeats of its priority lane) and runs them in one `BEGIN IMMEDIATE` transaction, each inside its own
//!   savepoint so one failing write does not undo the others, then commits once and answers
//!   every caller (group commit, effectum's model). Small inserts that wait for nothing are
//!   gathered into one write of their own while the writer is busy (`gather.rs`), one
//!   multi-row insert for all of them. `BEGIN IMMEDIATE` takes the write lock up
//!   front, so a transaction can never fail with `SQLITE_BUSY` half-way on a lock upgrade;
//!   other processes' writers wait on `busy_timeout`, and past it the writer retries.
//! * **Reads on a pool** of read connections ([`READ_POOL_SIZE`]), which WAL lets run beside
//!   the writer.
//! * **Pragmas**: `journal_mode=WAL` (asserted by a test), `busy_timeout=5000`,
//!   `synchronous=NORMAL` by default: in WAL mode this is safe against a crash of the process
//!   (no committed transaction is lost or corrupted), but the last transactions before a power
//!   loss or OS crash may roll back. Use `?synchronous=full` in the URL to fsync every commit.
//!   `journal_size_limit` keeps the WAL file from staying large after a checkpoint; while a
//!   reader pins the WAL, the writer checkpoints on a backoff of its own instead of after every
//!   commit (`src/store/sqlite/checkpoint.rs`);
//!   `temp_store=MEMORY` keeps the savepoint journals of grouped writes in memory, where they
//!   would otherwise spill to a temporary file past 64 KiB in every large group; readers keep
//!   SQLite's default (`temp_store=FILE`), so that a sort larger than the page cache (SQLite
//!   groups by sorting: the counts of two million finished jobs, say) spills to a file
//!   instead of holding every row in memory (it had taken 125 MB).
//! * **Wake-ups across processes**: a watcher reads `PRAGMA data_version` (a cheap read that
//!   changes when another connection commits) while somebody listens, and wakes every
//!   producer and cancel watcher of this process when it changed. It reads it at once when
//!   the WAL file is written (inotify, on Linux), and every [`CHANGE_POLL`] in any case, so a
//!   commit is seen within that poll even where no write event comes. SQLite has no NOTIFY, so
//!   a worker's cancel watcher then asks which of the jobs it holds a user asked to cancel
//!   (`job_cancel_requests`, a read of those rows only).

pub mod bench;
mod checkpoint;
pub mod copy;
mod gather;
#[cfg(test)]
mod lane_tests;
mod writer;

use std::cell::Cell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{params, Connection, OptionalExtension, Row};

use self::writer::Writer;
use super::clock::Clock;
use super::migrations::{self, MigrationSet};
use super::*;
use crate::error::{Error, Result};
use crate::job::{AttemptError, JobRow, JobState};

/// Readers spill large sorts to a file (see the module docs).
const READER_TEMP_STORE: &str = "PRAGMA temp_store = FILE;";

/// Most writes grouped into one transaction.
pub const MAX_GROUP: usize = 512;
/// Read connections in the pool.
pub const READ_POOL_SIZE: u32 = 4;
/// How often the change watcher looks at `PRAGMA data_version` without a write event.
pub const CHANGE_POLL: Duration = Duration::from_millis(2);
/// After a look woken by a write to the WAL, the change watcher waits this long before it
/// looks again: it bounds the watcher's looks while the file is written fast (a busy worker
/// commits hundreds of times a second), and is the pause before a look again when the write
/// that woke it was not yet a visible commit (the WAL's frames are written before the commit
/// is published in its index).
const CHANGE_EVENT_GAP: Duration = Duration::from_micros(250);
/// Looks again, [`CHANGE_EVENT_GAP`] apart, after a write event that showed no commit.
const CHANGE_RECHECKS: u32 = 4;
/// How long a connection waits on another process's lock before SQLite gives up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

macro_rules! sql {
    ($name:literal) => {
        include_str!(concat!("sql/", $name, ".sql"))
    };
}

mod batch;
mod workflow;
pub use batch::batch_insert_tx;
pub use workflow::workflow_insert_tx;

/// The SQLite store. Cheap to share behind an `Arc`.
pub struct SqliteStore {
    path: PathBuf,
    guard: Option<FileGuard>,
    writer: Writer,
    /// Small inserts waiting to be written together (see `gather.rs`).
    gather: gather::Gather,
    readers: r2d2::Pool<SqliteConnectionManager>,
    wakeup: Arc<Wakeup>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

/// Parses `sqlite://rel/path.db`, `sqlite:///abs/path.db` or `sqlite:path.db`, with an optional
/// `?synchronous=normal|full|off` query.
pub(crate) fn parse_url(url: &str) -> Result<(PathBuf, &'static str)> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| {
            Error::invalid(
                "database url",
                format!("{} is not a sqlite: URL", redact_url(url)),
            )
        })?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    // Judged as decoded, as it is opened (`%3Amemory%3A` is `:memory:`).
    let named = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    if named.is_empty() || named == ":memory:" {
        return Err(Error::invalid(
            "database url",
            "porter needs a SQLite file (several connections share it); give sqlite://FILE",
        ));
    }
    // SQLite reads a name that starts with `file:` as a URI of its own, whose options would
    // pass by the ones porter takes below.
    if named.starts_with("file:") {
        return Err(Error::invalid(
            "database url",
            "a path that starts with file: is read by SQLite as a URI; name the file as sqlite://PATH",
        ));
    }
    let mut synchronous = "NORMAL";
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("synchronous", v)) => {
                synchronous = match v.to_ascii_lowercase().as_str() {
                    "normal" => "NORMAL",
                    "full" => "FULL",
                    "off" => "OFF",
                    other => {
                        return Err(Error::invalid(
                            "database url",
                            format!("synchronous={other} (use normal, full or off)"),
                        ))
                    }
                }
            }
            Some(("mode", "rwc")) => {}
            // Only the option's name: its value may be a credential meant for another database.
            _ => {
                let name = pair.split_once('=').map_or(pair, |(name, _)| name);
                return Err(Error::invalid(
                    "database url",
                    format!("unknown SQLite URL option {name:?}"),
                ));
            }
        }
    }
    // Percent-decoded, as sqlx decodes it, so that an application opening the same URL with
    // sqlx opens the same file (`my%20jobs.db` is `my jobs.db`).
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()
        .filter(|p| !p.contains('\0'))
        .ok_or_else(|| {
            Error::invalid(
                "database url",
                format!(
                    "{}: its percent escapes decode to no file name (not UTF-8, or a NUL)",
                    redact_url(url)
                ),
            )
        })?;
    // Until 6 Dec the path was taken as written: a file named `my%20jobs.db` that porter made
    // then would be left for a new, empty `my jobs.db`, its jobs run by nobody.
    if decoded != path && !Path::new(decoded.as_ref()).exists() && Path::new(path).exists() {
        return Err(Error::invalid(
            "database url",
            format!(
                "{}: the path decodes to {decoded:?}, which does not exist, while {path:?} (the path as written, which porter opened until 6 Dec) does: rename the file, or write each % in its name as %25",
                redact_url(url)
            ),
        ));
    }
    Ok((PathBuf::from(decoded.as_ref()), synchronous))
}

/// Every rusqlite error becomes the library's error here, so the store's code converts with
/// `?` alone.
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        map_err(e)
    }
}

/// Maps a rusqlite error to the library's error. The only place that looks at driver codes.
pub fn map_err(e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode;
    match &e {
        rusqlite::Error::SqliteFailure(f, msg) => {
            let text = msg.clone().unwrap_or_else(|| f.to_string());
            match f.code {
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                    Error::Unavailable(format!("database is busy: {text}"))
                }
                ErrorCode::CannotOpen
                | ErrorCode::NotADatabase
                | ErrorCode::ReadOnly
                | ErrorCode::PermissionDenied => Error::Unavailable(text),
                ErrorCode::ConstraintViolation
                    if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                        || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
                {
                    Error::Conflict(text)
                }
                ErrorCode::ConstraintViolation => Error::invalid("job", text),
                _ => Error::Database(text),
            }
        }
        _ => Error::Database(e.to_string()),
    }
}

pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
}

/// Sets the pragmas and registers `porter_now()`, the time every statement reads (see
/// [`crate::store::clock`]). Flagged deterministic, SQLite evaluates it once per statement, as
/// it does its own `'now'`.
fn prepare_connection(conn: &Connection, synchronous: &str, clock: &Clock) -> rusqlite::Result<()> {
    set_pragmas(conn, synchronous)?;
    register_now(conn, clock.clone())?;
    register_ends_counted(conn)
}

/// Registers `porter_now()` on a connection, reading `clock`.
fn register_now(conn: &Connection, clock: Clock) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "porter_now",
        0,
        rusqlite::functions::FunctionFlags::SQLITE_UTF8
            | rusqlite::functions::FunctionFlags::SQLITE_DETERMINISTIC,
        move |_| Ok(fmt_time(clock.now())),
    )
}

/// Registers `porter_ends_counted()`, which `porter_jobs_finalized` reads (see
/// [`ENDS_COUNTED`]): every connection that updates a job's state needs it.
fn register_ends_counted(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "porter_ends_counted",
        0,
        rusqlite::functions::FunctionFlags::SQLITE_UTF8,
        |_| Ok(ENDS_COUNTED.with(Cell::get)),
    )
}

thread_local! {
    /// What `porter_ends_counted()` answers on this thread: true only while [`complete`]'s
    /// statement runs, whose parents' ends the statements after it count once per batch, so
    /// that `porter_jobs_finalized` (migration 0040) skips them. SQLite runs a statement, its
    /// triggers and their functions on the thread that steps it.
    static ENDS_COUNTED: Cell<bool> = const { Cell::new(false) };
}

/// Sets [`ENDS_COUNTED`] until dropped, even when the statement panics.
struct EndsCounted;

impl EndsCounted {
    fn set() -> Self {
        ENDS_COUNTED.with(|f| f.set(true));
        EndsCounted
    }
}

impl Drop for EndsCounted {
    fn drop(&mut self) {
        ENDS_COUNTED.with(|f| f.set(false));
    }
}

/// Registers `porter_now()` (the real clock) and `porter_ends_counted()` on a caller's own
/// connection that lacks them, so that [`job_insert_tx`] works there; a connection of a store
/// keeps the clock it has.
fn ensure_clock(conn: &Connection) -> Result<()> {
    let has = |f: &str| {
        conn.query_row(&format!("SELECT {f}()"), [], |_| Ok(()))
            .is_ok()
    };
    if !has("porter_now") {
        register_now(conn, Clock::new())?;
    }
    if !has("porter_ends_counted") {
        register_ends_counted(conn)?;
    }
    Ok(())
}

fn set_pragmas(conn: &Connection, synchronous: &str) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {synchronous}; PRAGMA journal_size_limit = 67108864; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; PRAGMA recursive_triggers = ON;"
    ))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Opens (creating when missing) and migrates the file; refuses a schema newer than ours.
fn open_writer(path: &Path, synchronous: &str, clock: &Clock) -> Result<Connection> {
    let conn = open_file(path, synchronous, clock)?;
    run_migrations(&conn, &migrations::CORE)?;
    Ok(conn)
}

/// Opens (creating when missing) the file in WAL mode, with the pragmas and `porter_now()`.
fn open_file(path: &Path, synchronous: &str, clock: &Clock) -> Result<Connection> {
    let conn = Connection::open(path).map_err(|e| {
        Error::Unavailable(format!(
            "cannot open SQLite file {}: {}",
            path.display(),
            map_err(e)
        ))
    })?;
    // A lock another program holds past the busy timeout (a transaction left open in a
    // database tool on a file not in WAL mode yet) is said as such, naming the file: it was a
    // bare "database is busy: database is locked" (review of 6 Dec).
    let opening = std::time::Instant::now();
    let locked = |e: Error| {
        match e {
        Error::Unavailable(text) if text.starts_with("database is busy") => {
            Error::Unavailable(format!(
                "the SQLite file {} is locked by another connection (a transaction held open in another program?); waited {} s: {text}",
                std::path::absolute(path)
                    .unwrap_or_else(|_| path.to_path_buf())
                    .display(),
                opening.elapsed().as_secs().max(BUSY_TIMEOUT.as_secs())
            ))
        }
        other => other,
    }
    };
    prepare_connection(&conn, synchronous, clock).map_err(|e| locked(map_err(e)))?;
    refuse_foreign_tables(&conn).map_err(locked)?;
    // Switching to WAL needs a moment of exclusive access; another process starting at the
    // same time makes it busy, so retry for a while.
    let mode: String = retry_busy(&conn, || {
        conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
    })
    .map_err(locked)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Database(format!(
            "SQLite refused WAL mode (journal_mode is {mode})"
        )));
    }
    Ok(conn)
}

/// Refuses, before anything changes the file (the switch to WAL is the first change, and
/// lasts), one that porter never migrated and that holds some of porter's core table names but
/// not all: another application's tables (see [`migrations::porter_0_1_versions`], which the
/// first migration asks again under its lock). Until 6 Dec such a file was switched to WAL
/// and then refused.
fn refuse_foreign_tables(conn: &Connection) -> Result<()> {
    let ours: bool = retry_busy(conn, || {
        conn.query_row(sql!("migration_exists"), [], |r| r.get(0))
    })?;
    if ours {
        return Ok(());
    }
    let core_tables: i64 = retry_busy(conn, || {
        conn.query_row(sql!("migration_porter_0_1_schema"), [], |r| r.get(0))
    })?;
    migrations::porter_0_1_versions(core_tables, true, false).map(drop)
}

/// Applies a set's pending migrations on a connection (not inside a transaction), recording
/// each in `porter_migrations`: one `BEGIN IMMEDIATE` transaction per migration, so that
/// processes migrating the file at once take turns on the write lock and each finds what the
/// other applied. `PRAGMA user_version` is left to the application. See
/// [`migrations`] (and [`super::migrate`] to run a set by URL).
pub fn run_migrations(conn: &Connection, set: &MigrationSet) -> Result<()> {
    // Without the write lock first: an up-to-date file (every open but the first) needs none.
    let exists: bool = conn.query_row(sql!("migration_exists"), [], |r| r.get(0))?;
    // A table from before 7 Dec has no checksums to list: the locked path adds the column.
    if exists {
        if let Ok(recorded) = migrations_recorded(conn, set) {
            set.verify(&recorded, sqlite_sql)?;
            if set.next(&versions(&recorded))?.is_none() {
                return Ok(());
            }
        }
    }
    while migrate_one(conn, set)? {}
    Ok(())
}

fn sqlite_sql(m: &migrations::Migration) -> &'static str {
    m.sqlite
}

/// The versions a set recorded in `porter_migrations`, each with its checksum.
fn migrations_recorded(
    conn: &Connection,
    set: &MigrationSet,
) -> Result<Vec<(i64, Option<String>)>> {
    let mut stmt = conn.prepare_cached(sql!("migration_list"))?;
    let rows = stmt.query_map([set.name], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The versions of [`migrations_recorded`].
fn versions(recorded: &[(i64, Option<String>)]) -> Vec<i64> {
    recorded.iter().map(|(v, _)| *v).collect()
}

/// Applies the set's next migration, if any, in its own write transaction; false when there
/// was none left.
fn migrate_one(conn: &Connection, set: &MigrationSet) -> Result<bool> {
    let tx = retry_busy(conn, || {
        rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)
    })?;
    tx.execute_batch(sql!("migration_table_create"))?;
    let has_checksums: bool = tx.query_row(sql!("migration_checksum_column"), [], |r| r.get(0))?;
    if !has_checksums {
        tx.execute_batch("ALTER TABLE porter_migrations ADD COLUMN checksum TEXT")?;
    }
    let mut recorded = migrations_recorded(&tx, set)?;
    if set.name == migrations::CORE.name && recorded.is_empty() {
        adopt_porter_0_1(&tx)?;
        recorded = migrations_recorded(&tx, set)?;
    }
    set.verify(&recorded, sqlite_sql)?;
    let Some(migration) = set.next(&versions(&recorded))? else {
        tx.commit()?;
        return Ok(false);
    };
    tx.execute_batch(migration.sqlite).map_err(|e| {
        Error::Migration(format!(
            "{} migration {} ({}): {}",
            set.name,
            migration.version,
            migration.name,
            map_err(e)
        ))
    })?;
    tx.execute(
        sql!("migration_insert"),
        params![
            set.name,
            migration.version,
            migration.name,
            migrations::checksum(migration.sqlite)
        ],
    )?;
    tx.commit()?;
    tracing::debug!(set = set.name, version = migration.version, "migrated");
    Ok(true)
}

/// A file of porter 0.1 (its tables there, nothing recorded in `porter_migrations`): records
/// the core versions its schema shows. Its `user_version` stays as it is, the application's
/// from now on.
fn adopt_porter_0_1(tx: &Connection) -> Result<()> {
    let (core_tables, lease): (i64, bool) =
        tx.query_row(sql!("migration_porter_0_1_schema"), [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    // Its second migration is empty on SQLite: present with the first.
    let versions = migrations::porter_0_1_versions(core_tables, true, lease)?;
    for migration in &migrations::CORE.migrations[..versions.len()] {
        // Adopted, not applied from this binary's SQL: no checksum.
        tx.execute(
            sql!("migration_insert"),
            params![
                migrations::CORE.name,
                migration.version,
                migration.name,
                None::<String>
            ],
        )?;
    }
    if !versions.is_empty() {
        tracing::info!(
            versions = ?versions,
            "recorded porter's versions in porter_migrations (they were in PRAGMA user_version, which is left to the application)"
        );
    }
    Ok(())
}

/// Applies a set's pending migrations to the file a `sqlite:` URL names, creating it (in WAL
/// mode) when missing.
pub(crate) async fn run_migrations_at(url: &str, set: &MigrationSet) -> Result<()> {
    let (path, synchronous) = parse_url(url)?;
    let set = *set;
    tokio::task::spawn_blocking(move || {
        let conn = open_file(&path, synchronous, &Clock::new())?;
        run_migrations(&conn, &set)
    })
    .await
    .map_err(|e| Error::Database(e.to_string()))?
}

/// Runs `f` again while another connection's lock makes it busy (each try waits up to
/// [`BUSY_TIMEOUT`]), 200 tries at most, saying once that it waits and for what: a reader
/// that another program keeps open on a file not yet in WAL mode holds the switch to WAL up
/// for as long as it stays (it waited up to about 17 minutes without a word: review of 6
/// Dec).
fn retry_busy<T>(conn: &Connection, mut f: impl FnMut() -> rusqlite::Result<T>) -> Result<T> {
    let mut attempts = 0;
    loop {
        match f() {
            Err(e) if is_busy(&e) && attempts < 200 => {
                if attempts == 0 {
                    tracing::warn!(
                        file = conn.path().unwrap_or_default(),
                        "another connection holds a lock on the SQLite file (another process migrating it, or a transaction open in another program); waiting for it to end"
                    );
                }
                attempts += 1;
                std::thread::sleep(Duration::from_millis(25));
            }
            other => return Ok(other?),
        }
    }
}

impl SqliteStore {
    /// Opens the file a `sqlite:` URL names, creating and migrating it as needed.
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with_clock(url, Clock::new()).await
    }

    /// Opens like [`SqliteStore::open`], reading "now" from `clock` (see [`crate::store::clock`]).
    pub async fn open_with_clock(url: &str, clock: Clock) -> Result<Self> {
        Self::open_at(url, clock, false).await
    }

    /// Opens with a clock, and with the writer waiting out other connections' write locks
    /// however long they last when `wait_for_locks` (see [`crate::store::OpenOptions`]).
    pub async fn open_at(url: &str, clock: Clock, wait_for_locks: bool) -> Result<Self> {
        let (path, synchronous) = parse_url(url)?;
        tokio::task::spawn_blocking(move || {
            Self::open_blocking(path, synchronous, clock, wait_for_locks)
        })
        .await
        .map_err(|e| Error::Database(e.to_string()))?
    }

    fn open_blocking(
        path: PathBuf,
        synchronous: &'static str,
        clock: Clock,
        wait_for_locks: bool,
    ) -> Result<Self> {
        let conn = open_writer(&path, synchronous, &clock)?;
        let reader_clock = clock.clone();
        let manager = SqliteConnectionManager::file(&path).with_init(move |c| {
            prepare_connection(c, synchronous, &reader_clock)?;
            // A reader writes no savepoint journal; a large sort of its own (the counts of
            // every finished job kept, say) spills to a file past the cache instead of
            // holding all its rows in memory.
            c.execute_batch(READER_TEMP_STORE)
        });
        let readers = r2d2::Pool::builder()
            .max_size(READ_POOL_SIZE)
            .min_idle(Some(1))
            .build(manager)
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        let wakeup = Arc::new(Wakeup::default());
        // After the readers opened: the WAL exists while any connection is open.
        let guard = FileGuard::capture(&path);
        let writer = Writer::start_with(conn, wait_for_locks, guard.clone());
        let watcher = ChangeWatcher::open(&path, synchronous).ok_or_else(|| {
            Error::Unavailable(format!(
                "could not open the change watcher's connection to {}",
                path.display()
            ))
        })?;
        spawn_change_watcher(watcher, Arc::downgrade(&wakeup));
        Ok(SqliteStore {
            path,
            guard,
            writer,
            gather: gather::Gather::default(),
            readers,
            wakeup,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` inside this process's write transaction (grouped with other writes, in its own
    /// savepoint): everything `f` writes, jobs inserted with [`job_insert_tx`] included, commits
    /// together or not at all. An `Err` from `f` rolls back its writes only.
    pub async fn write_tx<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.writer.run(f).await
    }

    /// The fences a statement of (worker ?1, a JSON array of job ids ?2) answers: the worker's
    /// jobs among those asking for something (a cancel, a give-back).
    async fn fences_among(
        &self,
        sql: &'static str,
        worker_id: &str,
        among: &[i64],
    ) -> Result<Vec<JobFence>> {
        let worker_id = worker_id.to_string();
        let among = serde_json::to_string(among).expect("ids serialize");
        self.read(move |c| {
            let mut stmt = c.prepare_cached(sql)?;
            let rows = stmt.query_map([worker_id, among], fence_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    /// Runs `f` on a read connection of this store's pool (beside the writer, which WAL
    /// allows): for an application's own reads of the same file.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.get().map_err(|e| Error::Unavailable(e.to_string()))?;
            f(&conn)
        })
        .await
        .map_err(|e| Error::Database(e.to_string()))?
    }
}

/// The database file and its WAL as this process opened them (device and inode). Deleting or
/// replacing either under a running process leaves its connections writing into a file
/// nobody else will ever open, so every commit and every health check compares them first.
/// The WAL is the one SQLite uses: beside the file a symbolic link points to, not beside the
/// link (until 6 Dec the guard looked beside the link, found none, and never checked it: a WAL
/// deleted under a worker on a linked path went unnoticed, and the file was corrupted).
#[derive(Debug, Clone)]
pub(crate) struct FileGuard {
    /// The path as opened, made absolute (a process that changes its working directory still
    /// checks the same path), links not followed: a link pointed elsewhere is a replacement.
    path: PathBuf,
    /// The file SQLite opened, links followed.
    real: PathBuf,
    db: (u64, u64),
    wal_path: PathBuf,
    wal: Option<(u64, u64)>,
    shm_path: PathBuf,
    shm: Option<(u64, u64)>,
}

fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// `path` with `suffix` appended to its file name.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The file SQLite keeps beside the database at `path` (`-wal`, `-shm`): beside the file a
/// symbolic link points to, as SQLite resolves it, not beside the link.
fn sqlite_companion(path: &Path, suffix: &str) -> PathBuf {
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    beside(&real, suffix)
}

impl FileGuard {
    fn capture(path: &Path) -> Option<FileGuard> {
        let wal_path = sqlite_companion(path, "-wal");
        let shm_path = sqlite_companion(path, "-shm");
        Some(FileGuard {
            path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
            real: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
            db: file_identity(path)?,
            wal: file_identity(&wal_path),
            wal_path,
            shm: file_identity(&shm_path),
            shm_path,
        })
    }

    /// `Err` with why, once the file (or its WAL) at the path is no longer the one opened.
    ///
    /// A database file replaced while its WAL stays (`mv other.db porter.db`) leaves that WAL,
    /// the old file's, beside the new one: the next process to open the path would replay the
    /// old file's pages onto the new file (review of 6 Dec: the restarted worker ran on the
    /// old jobs, and `PRAGMA integrity_check` found the file malformed). So once the file is
    /// found replaced or deleted, the WAL still this process's is moved aside
    /// (`porter.db-wal.replaced`, kept for whoever wants the old file's last writes) and its
    /// shared-memory index removed: the next process opens the new file as it is.
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        let replaced = |what: &str, p: &Path| {
            format!(
                "the SQLite {what} {} was deleted or replaced under this process; nothing more is written to it (restart the process)",
                p.display()
            )
        };
        if file_identity(&self.path) != Some(self.db) {
            self.retire_old_log();
            return Err(replaced("database file", &self.path));
        }
        if self.wal.is_some() && file_identity(&self.wal_path) != self.wal {
            return Err(replaced("write-ahead log", &self.wal_path));
        }
        Ok(())
    }

    /// Moves the old file's WAL aside and removes its index, each only while it is still the
    /// one this process opened (another process may have done it, or a new file's may be
    /// there now), and only once the file SQLite opened is gone from where it was: a link
    /// pointed at another file leaves the old one, and its WAL, to whoever uses it directly.
    fn retire_old_log(&self) {
        if file_identity(&self.real) == Some(self.db) {
            return;
        }
        if self.wal.is_some() && file_identity(&self.wal_path) == self.wal {
            let aside = beside(&self.wal_path, ".replaced");
            match std::fs::rename(&self.wal_path, &aside) {
                Ok(()) => {
                    tracing::warn!(wal = %self.wal_path.display(), moved_to = %aside.display(), "moved the replaced database file's write-ahead log aside, so that it is not replayed onto the new file")
                }
                Err(e) => {
                    tracing::warn!(wal = %self.wal_path.display(), error = %e, "could not move the replaced database file's write-ahead log aside; remove it before the next process opens the new file")
                }
            }
        }
        if self.shm.is_some() && file_identity(&self.shm_path) == self.shm {
            let _ = std::fs::remove_file(&self.shm_path);
        }
    }
}

/// Watches `PRAGMA data_version` and wakes every queue when another connection committed.
/// The watcher is opened (and its first sample taken) before the store is handed out, so a
/// commit made right after the store opened is never taken for the baseline.
fn spawn_change_watcher(watcher: ChangeWatcher, wakeup: std::sync::Weak<Wakeup>) {
    let open = ThreadOpen::count();
    std::thread::Builder::new()
        .name("porter-sqlite-watch".into())
        .spawn(move || {
            let _open = open;
            watch_changes(watcher, wakeup);
        })
        .expect("spawn the SQLite change watcher");
}

/// The change watcher's loop; it ends, closing its connection, once the store is gone.
fn watch_changes(mut watcher: ChangeWatcher, wakeup: std::sync::Weak<Wakeup>) {
    // Whether the last wait ended on a write event, and the looks left for it.
    let mut after_write = false;
    let mut rechecks = 0;
    loop {
        let Some(wakeup) = wakeup.upgrade() else {
            return;
        };
        let changed = watcher.look_changed(&wakeup);
        let listening = wakeup.has_subscribers();
        drop(wakeup);
        if !listening {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        if after_write {
            std::thread::sleep(CHANGE_EVENT_GAP);
            if !changed && rechecks > 0 {
                rechecks -= 1;
                continue;
            }
        }
        after_write = watcher.wait(CHANGE_POLL);
        rechecks = CHANGE_RECHECKS;
    }
}

/// Threads of this process's stores that hold a connection of their own (each store's writer
/// and change watcher), counted until each has ended and closed it.
static CONNECTION_THREADS: (std::sync::Mutex<usize>, std::sync::Condvar) =
    (std::sync::Mutex::new(0), std::sync::Condvar::new());

/// A thread's place in [`CONNECTION_THREADS`]: counted before the thread is spawned, let go
/// when it ends, after its connection closed.
pub(super) struct ThreadOpen(());

impl ThreadOpen {
    pub(super) fn count() -> ThreadOpen {
        *CONNECTION_THREADS
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner()) += 1;
        ThreadOpen(())
    }
}

impl Drop for ThreadOpen {
    fn drop(&mut self) {
        let (count, ended) = &CONNECTION_THREADS;
        *count.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        ended.notify_all();
    }
}

/// Waits, at most `timeout`, until every store this process dropped has closed its
/// connections; answers whether they all did. Call it before the process exits: SQLite merges
/// the write-ahead log into the database file, and removes it, when the last connection to the
/// file closes, and a process that exits with its connections open leaves the log beside the
/// file (whole, and read again by the next connection, but a copy of the database file alone
/// then misses what the log holds). A store still open is waited for until `timeout`.
pub fn wait_closed(timeout: Duration) -> bool {
    let (count, ended) = &CONNECTION_THREADS;
    let guard = count.lock().unwrap_or_else(|e| e.into_inner());
    let (left, _) = ended
        .wait_timeout_while(guard, timeout, |n| *n > 0)
        .unwrap_or_else(|e| e.into_inner());
    *left == 0
}

/// The change watcher's connection and the last `data_version` it read.
pub(crate) struct ChangeWatcher {
    conn: Connection,
    last: Option<i64>,
    /// How many times each queue was paused or given other limits, as last read (`None` when
    /// the read failed): a commit that changed a count is told to the queue's control
    /// subscribers.
    queues: Option<std::collections::BTreeMap<String, i64>>,
    /// The cancel requests counted for each worker's running jobs (`porter_workers.cancels`),
    /// as last read (`None` when the read failed): a worker whose count moved is told of a
    /// request ([`Wakeup::notify_cancel`]). By worker, not summed: a worker's row deleted in
    /// the same commit as a request for another's would have hidden it (review of 6 Dec).
    cancels: Option<std::collections::BTreeMap<String, i64>>,
    /// Write events of the WAL file; `None` where there are none (not Linux, or inotify
    /// refused): the watcher then only polls.
    writes: Option<WalWrites>,
}

impl ChangeWatcher {
    /// Opens the watcher's connection, starts watching the WAL file for writes (before the
    /// baseline is read, so that no commit falls between the two) and reads the baseline
    /// `data_version`.
    pub(crate) fn open(path: &Path, synchronous: &'static str) -> Option<ChangeWatcher> {
        let conn = Connection::open(path).ok()?;
        set_pragmas(&conn, synchronous).ok()?;
        let writes = WalWrites::watch(&sqlite_companion(path, "-wal"));
        let mut watcher = ChangeWatcher {
            conn,
            last: None,
            queues: None,
            cancels: None,
            writes,
        };
        watcher.last = watcher.sample();
        watcher.queues = watcher.queue_controls();
        watcher.cancels = watcher.cancel_count();
        Some(watcher)
    }

    /// Waits until the WAL file is written or `timeout` passes; returns whether a write
    /// ended the wait.
    pub(crate) fn wait(&mut self, timeout: Duration) -> bool {
        match &self.writes {
            Some(writes) => writes.wait(timeout),
            None => {
                std::thread::sleep(timeout);
                false
            }
        }
    }

    /// How many times each queue was paused or given other limits.
    fn queue_controls(&self) -> Option<std::collections::BTreeMap<String, i64>> {
        let mut stmt = self.conn.prepare_cached(sql!("queue_controls")).ok()?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .ok()?;
        rows.collect::<rusqlite::Result<_>>().ok()
    }

    fn cancel_count(&self) -> Option<std::collections::BTreeMap<String, i64>> {
        let mut stmt = self
            .conn
            .prepare_cached(sql!("worker_cancels_counted"))
            .ok()?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .ok()?;
        rows.collect::<rusqlite::Result<_>>().ok()
    }

    /// Tells each worker whose count of cancel requests moved (a worker new since the last
    /// read, with requests counted, too), and every worker when either read failed (a request
    /// may have been missed). A worker's row gone tells nobody.
    fn look_cancels(&mut self, wakeup: &Wakeup) {
        let now = self.cancel_count();
        match (&self.cancels, &now) {
            (Some(before), Some(after)) => {
                for (worker, n) in after {
                    if before.get(worker).copied().unwrap_or(0) != *n {
                        wakeup.notify_cancel(worker);
                    }
                }
            }
            _ => wakeup.notify_cancel(wake::ALL_QUEUES),
        }
        self.cancels = now;
    }

    /// Tells the control subscribers of each queue whose count of changes differs from the
    /// last read (every queue when either read failed: a change may have been missed).
    fn look_controls(&mut self, wakeup: &Wakeup) {
        let now = self.queue_controls();
        match (&self.queues, &now) {
            (Some(before), Some(after)) => {
                let names: std::collections::BTreeSet<&String> =
                    before.keys().chain(after.keys()).collect();
                for name in names {
                    if before.get(name) != after.get(name) {
                        wakeup.notify_control(name);
                    }
                }
            }
            _ => wakeup.notify_control(wake::ALL_QUEUES),
        }
        self.queues = now;
    }

    fn sample(&self) -> Option<i64> {
        self.conn
            .query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0))
            .ok()
    }

    /// Reads `data_version` once and wakes every queue of `wakeup` if another connection
    /// committed since the last read. Returns whether anybody listens (the caller looks less
    /// often while nobody does).
    ///
    /// The wake does not depend on whether anybody listened before the read: a subscriber
    /// that arrived between that check and the read would otherwise lose the commit. Waking
    /// nobody costs one lock.
    #[cfg(test)]
    pub(crate) fn look(&mut self, wakeup: &Wakeup) -> bool {
        self.look_changed(wakeup);
        wakeup.has_subscribers()
    }

    /// Reads `data_version` once and wakes every queue of `wakeup` if another connection
    /// committed since the last read; returns whether one had.
    fn look_changed(&mut self, wakeup: &Wakeup) -> bool {
        let mut changed = false;
        if let Some(v) = self.sample() {
            // No baseline (the read before failed): nothing says nothing changed since.
            if self.last.is_none_or(|l| l != v) {
                wakeup.notify(wake::ALL_QUEUES);
                self.look_controls(wakeup);
                self.look_cancels(wakeup);
                changed = true;
            }
            self.last = Some(v);
        }
        changed
    }
}

/// Write events of one file (the WAL), through inotify: a commit of any process writes its
/// frames to the WAL, so the watcher looks at `data_version` at once instead of at its next
/// poll. Linux only; elsewhere the watcher polls.
#[cfg(target_os = "linux")]
struct WalWrites {
    fd: std::os::fd::OwnedFd,
}

#[cfg(target_os = "linux")]
impl WalWrites {
    fn watch(wal: &Path) -> Option<WalWrites> {
        use rustix::fs::inotify;
        let fd =
            inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK).ok()?;
        inotify::add_watch(&fd, wal, inotify::WatchFlags::MODIFY).ok()?;
        Some(WalWrites { fd })
    }

    /// Waits for a write event or the timeout; takes every event queued (one look covers
    /// them all). Returns whether there was one.
    fn wait(&self, timeout: Duration) -> bool {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        let ts = Timespec {
            tv_sec: timeout.as_secs() as _,
            tv_nsec: timeout.subsec_nanos() as _,
        };
        match poll(&mut fds, Some(&ts)) {
            Ok(n) if n > 0 => {
                let mut buf = [0u8; 1024];
                while matches!(rustix::io::read(&self.fd, &mut buf), Ok(n) if n > 0) {}
                true
            }
            Ok(_) => false,
            Err(_) => {
                // Interrupted, say: behave as a poll would.
                std::thread::sleep(timeout);
                false
            }
        }
    }
}

/// No write events off Linux: the watcher polls.
#[cfg(not(target_os = "linux"))]
struct WalWrites;

#[cfg(not(target_os = "linux"))]
impl WalWrites {
    fn watch(_wal: &Path) -> Option<WalWrites> {
        None
    }

    fn wait(&self, timeout: Duration) -> bool {
        std::thread::sleep(timeout);
        false
    }
}

// ---- row mapping --------------------------------------------------------------------------

/// Formats a time the way the SQLite schema stores it. A time in a leap second (chrono's
/// second 60, which RFC 3339 allows) is taken into the next second, its fraction kept
/// (`…:34:60.500Z` is `…:35:00.500Z`), as PostgreSQL stores it: written as it is, it is no
/// time SQLite's date functions read, and it sorts before `…:35:00`.
pub fn fmt_time(t: DateTime<Utc>) -> String {
    let t = DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t);
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A time in porter's one format ([`fmt_time`]) and no other: the SQL compares times as
/// text, which orders this format alone. RFC 3339's other spellings (an offset, no
/// milliseconds, a space for the `T`) were read here too, and a job due by its text was then
/// run as of another time: `…T18:11:39.497-06:00`, five hours ahead, ran at once.
fn parse_time(s: &str) -> rusqlite::Result<DateTime<Utc>> {
    let shape = s.len() == 24
        && s.bytes().enumerate().all(|(i, c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            23 => c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !shape {
        return Err(rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            "not in porter's format (YYYY-MM-DDTHH:MM:SS.mmmZ)".into(),
        ));
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })
}

fn opt_time(s: Option<String>) -> rusqlite::Result<Option<DateTime<Utc>>> {
    s.as_deref().map(parse_time).transpose()
}

/// A time in a table other than `porter_jobs` (queues, workers, workflows, batches), which
/// another program may have written with SQLite's own functions: porter's format, RFC 3339
/// with an offset, or SQLite's UTC text (`datetime('now')`, `CURRENT_TIMESTAMP`:
/// `YYYY-MM-DD HH:MM:SS`, with optional fractional seconds, `T` separator and `Z`), read as
/// UTC. `None` for anything else. Job rows
/// keep their own rule ([`Unreadable::time`]): a job's time in another format than porter's
/// makes the job unreadable, as the README documents.
fn time_outside_jobs(v: rusqlite::types::ValueRef<'_>) -> Option<DateTime<Utc>> {
    let text = value_text(v);
    if let Ok(t) = parse_time(&text) {
        return Some(t);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(&text) {
        return Some(t.with_timezone(&Utc));
    }
    let text = text.strip_suffix('Z').unwrap_or(&text);
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(text, f).ok())
        .map(|t| t.and_utc())
}

/// A NOT NULL time outside `porter_jobs` ([`time_outside_jobs`]); what it cannot read shows
/// as the Unix epoch ("long ago") instead of failing the listing.
pub(crate) fn time_outside_jobs_or_epoch(v: rusqlite::types::ValueRef<'_>) -> DateTime<Utc> {
    time_outside_jobs(v).unwrap_or(DateTime::UNIX_EPOCH)
}

/// A job's `errors` (see [`crate::store::errors_read`]): what porter wrote reads as it is,
/// anything else (another program's text, a blob, bytes that are not UTF-8) without failing
/// the row.
fn errors_col(v: rusqlite::types::ValueRef<'_>, created_at: DateTime<Utc>) -> Vec<AttemptError> {
    let text = value_text(v);
    if text == "[]" {
        return Vec::new();
    }
    serde_json::from_str::<Vec<AttemptError>>(&text).unwrap_or_else(|_| {
        crate::store::errors_read(
            serde_json::from_str(&text).map_err(|_| text.to_string()),
            created_at,
        )
    })
}

/// A job's recorded output and progress from a row of `job_output_get.sql`, with its id.
fn recorded_from_row(r: &Row<'_>) -> rusqlite::Result<(i64, JobOutput)> {
    let json = |i: usize| -> rusqlite::Result<Option<serde_json::Value>> {
        r.get::<_, Option<String>>(i)?
            .map(|t| json_col(&t))
            .transpose()
    };
    Ok((
        r.get(0)?,
        JobOutput {
            output: json(1)?,
            progress: json(2)?,
        },
    ))
}

fn json_col<T: serde::de::DeserializeOwned>(s: &str) -> rusqlite::Result<T> {
    serde_json::from_str(s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// The columns of `porter_jobs` in table order, as `SELECT *` and `RETURNING *` give them. Job
/// rows are read by position: a read by name searches the column names, for every column of
/// every row, and that showed in profiles of the writer thread.
const JOB_COLUMNS: [&str; 23] = [
    "id",
    "kind",
    "queue",
    "args",
    "state",
    "priority",
    "attempt",
    "max_attempts",
    "errors",
    "created_at",
    "scheduled_at",
    "attempted_at",
    "finalized_at",
    "attempted_by",
    "unique_key",
    "metadata",
    "concurrency_key",
    "sequence_key",
    "waiting_for",
    "has_dependents",
    "workflow_id",
    "workflow_step",
    "batch_id",
];

fn job_from_row(r: &Row<'_>) -> rusqlite::Result<JobRow> {
    debug_assert_eq!(
        r.as_ref().column_names(),
        JOB_COLUMNS,
        "job rows are read by position"
    );
    let state: String = r.get(4)?;
    // What another program wrote and porter cannot read (see JobRow::unreadable).
    let mut unreadable = Unreadable::default();
    let created_at = unreadable.time("created_at", r.get_ref(9)?, DateTime::UNIX_EPOCH);
    Ok(JobRow {
        id: r.get(0)?,
        kind: text_col(r.get_ref(1)?),
        queue: text_col(r.get_ref(2)?),
        args: unreadable.json("args", r.get_ref(3)?),
        state: state.parse::<JobState>().map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, Box::new(e))
        })?,
        priority: unreadable.int("priority", r.get_ref(5)?, crate::job::DEFAULT_PRIORITY),
        // No claim takes a job whose count is not a whole number from -2^31 to 999,999,999
        // (see job_claim.sql): a listing shows it, with a placeholder.
        attempt: unreadable.int("attempt", r.get_ref(6)?, 0),
        max_attempts: unreadable.int("max_attempts", r.get_ref(7)?, 1),
        errors: errors_col(r.get_ref(8)?, created_at),
        created_at,
        scheduled_at: unreadable.time("scheduled_at", r.get_ref(10)?, created_at),
        attempted_at: unreadable.opt_time("attempted_at", r.get_ref(11)?),
        finalized_at: unreadable.opt_time("finalized_at", r.get_ref(12)?),
        attempted_by: opt_text_col(r.get_ref(13)?),
        unique_key: opt_text_col(r.get_ref(14)?),
        metadata: unreadable.json("metadata", r.get_ref(15)?),
        output: None,
        progress: None,
        concurrency_key: opt_text_col(r.get_ref(16)?),
        sequence_key: opt_text_col(r.get_ref(17)?),
        unreadable: unreadable.said(),
    })
}

/// A column's value as text: what porter wrote reads as it is; a BLOB another program bound
/// where text belongs (or bytes that are not UTF-8) reads as its text, lossily.
fn text_col(v: rusqlite::types::ValueRef<'_>) -> String {
    match v {
        rusqlite::types::ValueRef::Null => String::new(),
        v => value_text(v).into_owned(),
    }
}

/// Any value as text, borrowed when it is UTF-8 text already: a BLOB as its bytes' text
/// (lossily), a number as it prints, NULL as JSON's `null`.
fn value_text(v: rusqlite::types::ValueRef<'_>) -> std::borrow::Cow<'_, str> {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Text(b) | ValueRef::Blob(b) => String::from_utf8_lossy(b),
        ValueRef::Null => "null".into(),
        ValueRef::Integer(i) => i.to_string().into(),
        ValueRef::Real(f) => f.to_string().into(),
    }
}

fn opt_text_col(v: rusqlite::types::ValueRef<'_>) -> Option<String> {
    match v {
        rusqlite::types::ValueRef::Null => None,
        v => Some(text_col(v)),
    }
}

/// The columns of a job row porter could not read, and why (see [`JobRow::unreadable`]).
#[derive(Default)]
struct Unreadable(Vec<String>);

impl Unreadable {
    /// A JSON column; `null` when it does not parse (a number past an f64, nesting deeper than
    /// the parser goes, an escape of half a UTF-16 pair) or is not UTF-8 (read with U+FFFD in
    /// place of its bytes, the job would run on other args than its row holds).
    fn json(&mut self, column: &str, v: rusqlite::types::ValueRef<'_>) -> serde_json::Value {
        if let rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) = v {
            if let Err(e) = std::str::from_utf8(b) {
                self.0.push(format!(
                    "{column}: not UTF-8 (byte {} of {})",
                    e.valid_up_to(),
                    b.len()
                ));
                return serde_json::Value::Null;
            }
        }
        serde_json::from_str(&value_text(v)).unwrap_or_else(|e| {
            self.0.push(format!("{column}: {e}"));
            serde_json::Value::Null
        })
    }

    /// An integer column; `placeholder` when it holds another type or does not fit.
    fn int<T: TryFrom<i64>>(
        &mut self,
        column: &str,
        v: rusqlite::types::ValueRef<'_>,
        placeholder: T,
    ) -> T {
        let read = match v {
            rusqlite::types::ValueRef::Integer(i) => T::try_from(i).ok(),
            _ => None,
        };
        read.unwrap_or_else(|| {
            self.0.push(format!(
                "{column}: {} is not a whole number in {}'s range",
                described(v),
                std::any::type_name::<T>()
            ));
            placeholder
        })
    }

    /// A time column; `placeholder` when it is not a time in porter's format (another
    /// program's `datetime('now')`, an offset, a word).
    fn time(
        &mut self,
        column: &str,
        v: rusqlite::types::ValueRef<'_>,
        placeholder: DateTime<Utc>,
    ) -> DateTime<Utc> {
        parse_time(&value_text(v)).unwrap_or_else(|_| {
            self.0.push(format!(
                "{column}: {} is not a time in porter's format (YYYY-MM-DDTHH:MM:SS.mmmZ)",
                described(v)
            ));
            placeholder
        })
    }

    /// A time column that may be NULL; `None` when it is not a time in porter's format.
    fn opt_time(
        &mut self,
        column: &str,
        v: rusqlite::types::ValueRef<'_>,
    ) -> Option<DateTime<Utc>> {
        match v {
            rusqlite::types::ValueRef::Null => None,
            v => Some(self.time(column, v, DateTime::UNIX_EPOCH)),
        }
    }

    fn said(self) -> Option<String> {
        (!self.0.is_empty()).then(|| self.0.join("; "))
    }
}

/// A value as an error message shows it: its type, and text cut short.
fn described(v: rusqlite::types::ValueRef<'_>) -> String {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => format!("{f} (REAL)"),
        ValueRef::Text(b) | ValueRef::Blob(b) => {
            let text = String::from_utf8_lossy(&b[..b.len().min(40)]).into_owned();
            format!(
                "{text:?} ({})",
                if matches!(v, ValueRef::Text(_)) {
                    "TEXT"
                } else {
                    "BLOB"
                }
            )
        }
    }
}

/// A queue row of `queue_list.sql` / `queue_get.sql`: name, paused_at, then the limits.
fn queue_from_row(r: &Row<'_>) -> rusqlite::Result<QueueRow> {
    Ok(QueueRow {
        name: text_col(r.get_ref(0)?),
        // Any value pauses the queue (the claim asks only whether it is NULL), so one porter
        // cannot read still shows the queue paused, since the Unix epoch.
        paused_at: match r.get_ref(1)? {
            rusqlite::types::ValueRef::Null => None,
            v => Some(time_outside_jobs_or_epoch(v)),
        },
        limits: limits_at(r, 2)?,
    })
}

/// The six limit columns from `at` on: concurrency, per key, rate and its period (ms), per-key
/// rate and its period.
fn limits_at(r: &Row<'_>, at: usize) -> rusqlite::Result<QueueLimits> {
    let rate = |n: Option<u32>, ms: Option<i64>| match (n, ms) {
        (Some(limit), Some(ms)) => Some(Rate {
            limit,
            period_ms: ms.max(1) as u64,
        }),
        _ => None,
    };
    Ok(QueueLimits {
        concurrency: r.get(at)?,
        per_key: r.get(at + 1)?,
        rate: rate(r.get(at + 2)?, r.get(at + 3)?),
        rate_per_key: rate(r.get(at + 4)?, r.get(at + 5)?),
    })
}

fn limits_from_row(r: &Row<'_>) -> rusqlite::Result<QueueLimits> {
    limits_at(r, 0)
}

/// Makes the queue's due scheduled and retryable jobs available, then claims up to the limit
/// of its available jobs, unless the queue is paused or has limits (then nothing). `kinds` is
/// `params.kinds` as a JSON array.
fn claim_available(c: &Connection, params: &JobClaimParams, kinds: &str) -> Result<Vec<JobRow>> {
    c.prepare_cached(sql!("job_promote_due"))?
        .execute([&params.queue])?;
    let mut stmt = c.prepare_cached(sql!("job_claim"))?;
    let rows = stmt.query_map(
        params![params.queue, params.worker_id, kinds, params.limit],
        job_from_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Fences as the JSON array of `[id, attempt, worker]` that `job_complete.sql` reads.
fn fences_json(fences: &[JobFence]) -> String {
    serde_json::to_string(
        &fences
            .iter()
            .map(|f| (f.id, f.attempt, &f.worker_id))
            .collect::<Vec<_>>(),
    )
    .expect("fences serialize")
}

/// A fence from a row of (id, attempt, worker).
fn fence_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobFence> {
    Ok(JobFence {
        id: r.get(0)?,
        attempt: r.get(1)?,
        worker_id: r.get(2)?,
    })
}

/// Completes jobs (fenced), inside the write transaction. Returns the fences that matched.
///
/// The completed jobs that others wait on are counted by their children once per batch, after
/// the statement, rather than by `porter_jobs_finalized` once per job (migration 0040).
fn complete(c: &Connection, batch: String) -> Result<Vec<JobFence>> {
    let mut stmt = c.prepare_cached(sql!("job_complete"))?;
    let mut parents = Vec::new();
    let completed = {
        let _counted = EndsCounted::set();
        let rows = stmt.query_map([batch], |r| Ok((fence_from_row(r)?, r.get::<_, bool>(3)?)))?;
        let mut completed = Vec::new();
        for row in rows {
            let (fence, has_dependents) = row?;
            if has_dependents {
                parents.push(fence.id);
            }
            completed.push(fence);
        }
        completed
    };
    if !parents.is_empty() {
        let parents = serde_json::to_string(&parents).expect("ids serialize");
        c.prepare_cached(sql!("job_complete_children_free"))?
            .execute([&parents])?;
        c.prepare_cached(sql!("job_complete_children_count"))?
            .execute([&parents])?;
    }
    Ok(completed)
}

/// A rate as its two columns: the limit and the period in milliseconds.
fn rate_columns(rate: Option<Rate>) -> (Option<u32>, Option<i64>) {
    match rate {
        Some(r) => (Some(r.limit), Some(r.period_ms.min(i64::MAX as u64) as i64)),
        None => (None, None),
    }
}

/// The claim of a queue with limits, inside the write transaction (see
/// `job_claim_limited.sql`): prunes starts past the longest rate window, counts those dated
/// after now as started now, claims, records the starts of a rate-limited queue, and says
/// whether due jobs were held back. With per-key
/// limits the statement runs again while its last pass took jobs and the claim is short of
/// what it may take: each pass looks at no more jobs than its budget, and the keys it took
/// are full for the next.
fn claim_limited(
    c: &Connection,
    params: &JobClaimParams,
    ahead: ClaimAhead,
    kinds: &str,
    limits: &QueueLimits,
) -> Result<JobClaimed> {
    let (limit, for_slots) = ahead.within(params.limit, limits);
    let window = |r: Option<Rate>| r.map(|r| ago(r.period()));
    let longest = [limits.rate, limits.rate_per_key]
        .into_iter()
        .flatten()
        .map(|r| r.period())
        .max();
    if let Some(longest) = longest {
        c.prepare_cached(sql!("queue_starts_prune"))?
            .execute(params![params.queue, ago(longest)])?;
        c.prepare_cached(sql!("queue_starts_clamp"))?
            .execute(params![params.queue])?;
    }
    let mut jobs: Vec<JobRow> = Vec::new();
    loop {
        let mut stmt = c.prepare_cached(sql!("job_claim_limited"))?;
        let rows = stmt.query_map(
            params![
                params.queue,
                params.worker_id,
                kinds,
                limit,
                limits.concurrency,
                limits.per_key,
                limits.rate.map(|r| r.limit),
                window(limits.rate),
                limits.rate_per_key.map(|r| r.limit),
                window(limits.rate_per_key),
                for_slots,
                ahead.waiting,
                ahead.in_slots,
                jobs.len() as u32,
            ],
            job_from_row,
        )?;
        let pass = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        if longest.is_some() && !pass.is_empty() {
            let ids = serde_json::to_string(&pass.iter().map(|j| j.id).collect::<Vec<_>>())
                .expect("ids serialize");
            c.prepare_cached(sql!("queue_starts_record"))?
                .execute([ids])?;
        }
        let took = pass.len();
        jobs.extend(pass);
        if took == 0 || !limits.per_key_any() || jobs.len() >= limit as usize {
            break;
        }
    }
    let held_back = jobs.len() < params.limit as usize
        && c.prepare_cached(sql!("job_claim_left"))?
            .query_row(params![params.queue, kinds], |r| r.get::<_, bool>(0))?;
    Ok(JobClaimed {
        jobs,
        held_back,
        limited: true,
        rate_limited: longest.is_some(),
        // Every pass took what it could, so a claim at once would find nothing more.
        more_at_once: false,
    })
}

/// An SQLite date modifier for a time `d` after now, e.g. `+30.000 seconds`, with `d`
/// clamped to [`MAX_DURATION`] (past year 9999 SQLite's date functions give NULL).
fn ahead(d: Duration) -> String {
    format!("{:+.3} seconds", clamp_secs(d))
}

/// An SQLite date modifier for a time `d` before now, e.g. `-15.000 seconds`, clamped like
/// [`ahead`] (before year 0 SQLite gives NULL, and a comparison with NULL matches nothing or,
/// under NOT EXISTS, everything).
/// Whether live workers serve each queue and kind, asked on a caller's connection after a
/// `_tx` insert (the workers' rows are committed, so its transaction sees them): a failed
/// check counts as served and is logged at debug, as the pool's check does.
fn served_on(conn: &Connection, needed: &[((String, String), u64)]) -> Vec<bool> {
    needed
        .iter()
        .map(|((queue, kind), _)| {
            let count = conn
                .prepare_cached(sql!("worker_count_serving"))
                .and_then(|mut s| {
                    s.query_row(params![ago(DEFAULT_LEASE), queue, kind], |r| {
                        r.get::<_, i64>(0)
                    })
                });
            match count {
                Ok(n) => n > 0,
                Err(e) => {
                    tracing::debug!(error = %e, queue, kind, "could not ask whether a live worker serves the jobs");
                    true
                }
            }
        })
        .collect()
}

fn ago(d: Duration) -> String {
    format!("{:+.3} seconds", -clamp_secs(d))
}

// ---- writes shared with callers' own transactions -------------------------------------------

/// Inserts jobs on a caller's connection, inside whatever transaction it has open: the jobs
/// exist if and only if that transaction commits. Producers in this process are not woken (the
/// insert is not committed yet); other processes notice through `data_version`, and the poll
/// catches the rest.
///
/// All the jobs or none, in a savepoint of its own (on a connection with no transaction open
/// too, where each statement would otherwise commit alone: a child's row and the edge to its
/// parent apart). The savepoint's first statement writes, so a deferred transaction that has
/// read nothing yet takes the write lock then, waiting out another process's writer for as
/// long as the connection's busy timeout allows. Inserts that read before they write (jobs
/// with parents or a sequence) otherwise failed at once with "database is locked": SQLite
/// calls no busy handler when a transaction that has read asks for the write lock. A caller's
/// transaction that reads before the insert should begin IMMEDIATE for the same reason.
///
/// Each job is checked first ([`JobInsertParams::check`]): nothing is written when it fails.
pub fn job_insert_tx(conn: &Connection, jobs: &[JobInsertParams]) -> Result<Vec<InsertResult>> {
    for job in jobs {
        job.check()?;
    }
    ensure_clock(conn)?;
    conn.execute_batch("SAVEPOINT porter_insert")?;
    let inserted = conn
        .prepare_cached(sql!("write_lock_take"))
        .and_then(|mut s| s.execute([]))
        .map_err(Error::from)
        .and_then(|_| insert_jobs(conn, jobs));
    match inserted {
        Ok(out) => {
            conn.execute_batch("RELEASE porter_insert")?;
            Ok(out)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO porter_insert; RELEASE porter_insert")?;
            Err(e)
        }
    }
}

/// [`job_insert_tx`] on a connection of this store's own (which has `porter_now()`).
fn insert_jobs(conn: &Connection, jobs: &[JobInsertParams]) -> Result<Vec<InsertResult>> {
    insert_jobs_as(conn, jobs, &[], &HashMap::new())
}

/// [`insert_jobs`] for the steps of a workflow: `starts` (one per job) says how each starts
/// beyond waiting (tagged as its step; marked as having dependents when later steps wait for
/// it, so that their inserts need not mark it), and `own` holds the states of the steps
/// inserted before, which their children read from there instead of marking them again.
/// Without `starts`, jobs start untagged and unmarked, and every parent is marked.
pub(super) fn insert_jobs_as(
    conn: &Connection,
    jobs: &[JobInsertParams],
    starts: &[(bool, Option<(i64, String)>)],
    own: &HashMap<i64, JobState>,
) -> Result<Vec<InsertResult>> {
    for job in jobs {
        job.check_times()?;
    }
    // Every parent must exist, checked before anything is written.
    let parent_ids: Vec<i64> = jobs
        .iter()
        .flat_map(|j| j.depends_on.iter().copied())
        .filter(|p| !own.contains_key(p))
        .collect();
    if !parent_ids.is_empty() {
        let ids = serde_json::to_string(&parent_ids).expect("ids serialize");
        let found: std::collections::HashSet<i64> = conn
            .prepare_cached(sql!("job_parents_get"))?
            .query_map([ids], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        if let Some(missing) = parent_ids.iter().find(|id| !found.contains(id)) {
            return Err(crate::store::missing_parent(*missing));
        }
    }
    if starts.is_empty() && !jobs.iter().any(JobInsertParams::waits) {
        return insert_rows(conn, jobs, &[]);
    }
    if jobs.iter().all(|j| j.sequence_key.is_none()) {
        return insert_held(conn, jobs, starts, own);
    }
    // A job of a sequence waits when its sequence has an unfinished job, which may be one
    // inserted just before it in this batch: one row at a time, each reading the last.
    let mut insert = conn.prepare_cached(sql!("job_insert"))?;
    let mut out = Vec::with_capacity(jobs.len());
    for (i, job) in jobs.iter().enumerate() {
        // No lock needed to read the sequence and parents: this runs inside the one write
        // transaction (BEGIN IMMEDIATE), which nothing can interleave with.
        let busy = match &job.sequence_key {
            Some(key) => conn.query_row(sql!("job_sequence_busy"), [key], |r| r.get(0))?,
            None => false,
        };
        let parents = if job.waits() {
            parent_states(conn, std::slice::from_ref(job), own)?
        } else {
            HashMap::new()
        };
        let hold = starting(job, busy, &parents, starts.get(i))?;
        let args =
            serde_json::to_string(&job.args).map_err(|e| Error::invalid("args", e.to_string()))?;
        let metadata = serde_json::to_string(&job.metadata)
            .map_err(|e| Error::invalid("metadata", e.to_string()))?;
        let delay = job.schedule_in.map(ahead);
        let inserted = insert
            .query_row(
                params![
                    job.kind,
                    job.queue,
                    args,
                    job.scheduled_at.map(fmt_time),
                    delay,
                    job.priority,
                    job.max_attempts,
                    job.unique_key,
                    metadata,
                    job.concurrency_key,
                    job.sequence_key,
                    hold.waiting_for,
                    hold.state.map(|s| s.as_str()),
                    hold.error,
                    hold.has_dependents,
                    hold.workflow.as_ref().map(|w| w.0),
                    hold.workflow.as_ref().map(|w| w.1.as_str()),
                ],
                job_from_row,
            )
            .optional()?;
        match inserted {
            Some(row) => {
                for (parent, resolved) in &hold.edges {
                    conn.prepare_cached(sql!("job_dep_insert"))?
                        .execute(params![row.id, parent, job.after_any, resolved])?;
                }
                out.push(InsertResult {
                    job: row,
                    inserted: true,
                })
            }
            None => out.push(held_by(conn, job)?),
        }
    }
    Ok(out)
}

/// The answer to a job not inserted because an unfinished job holds its unique key: that job.
fn held_by(conn: &Connection, job: &JobInsertParams) -> Result<InsertResult> {
    let key = job.unique_key.as_deref().unwrap_or_default();
    let existing = conn
        .prepare_cached(sql!("job_get_unique"))
        .and_then(|mut s| s.query_row([key], job_from_row))?;
    Ok(InsertResult {
        job: existing,
        inserted: false,
    })
}

/// Inserts jobs that may wait for parents, but not in a sequence, in multi-row statements:
/// their parents outside `own` are marked and read in one statement, how each job starts is
/// decided from those states, then the rows go in `job_insert_held_rows.sql` statements and
/// their edges in `job_dep_insert_rows.sql` ones. No row of the batch reads what an earlier one
/// wrote (parents are older than the batch, and nothing waits in a sequence here), so this
/// gives what a statement per row gave, in a few statements instead of two or three per job.
/// `starts` and `own` are as [`insert_jobs_as`] takes them.
fn insert_held(
    conn: &Connection,
    jobs: &[JobInsertParams],
    starts: &[(bool, Option<(i64, String)>)],
    own: &HashMap<i64, JobState>,
) -> Result<Vec<InsertResult>> {
    let parents = parent_states(conn, jobs, own)?;
    let holds = jobs
        .iter()
        .enumerate()
        .map(|(i, job)| starting(job, false, &parents, starts.get(i)))
        .collect::<Result<Vec<_>>>()?;
    let out = insert_rows(conn, jobs, &holds)?;
    let mut edges = Vec::new();
    for ((job, hold), result) in jobs.iter().zip(&holds).zip(&out) {
        if result.inserted {
            for &(parent, resolved) in &hold.edges {
                edges.push((result.job.id, parent, job.after_any, resolved));
            }
        }
    }
    for cut in cuts(edges.len(), EDGE_SIZES) {
        let sql = rows_sql(sql!("job_dep_insert_rows"), EDGE_VARIABLES, cut.len());
        let mut stmt = conn.prepare_cached(&sql)?;
        for (i, (child, parent, after_any, resolved)) in edges[cut].iter().enumerate() {
            let at = i * EDGE_VARIABLES;
            stmt.raw_bind_parameter(at + 1, child)?;
            stmt.raw_bind_parameter(at + 2, parent)?;
            stmt.raw_bind_parameter(at + 3, after_any)?;
            stmt.raw_bind_parameter(at + 4, resolved)?;
        }
        stmt.raw_execute()?;
    }
    Ok(out)
}

/// The states of the parents of `jobs`: those in `own` (steps of the same workflow) read from
/// there, the others marked as having dependents (so that their end runs the triggers
/// porter_jobs_finalized and porter_jobs_parent_failed) and read in one statement. Only this batch's parents: a
/// workflow's `own` grows with its steps.
fn parent_states(
    conn: &Connection,
    jobs: &[JobInsertParams],
    own: &HashMap<i64, JobState>,
) -> Result<HashMap<i64, JobState>> {
    let mut parents = HashMap::new();
    let mut outside = Vec::new();
    for &p in jobs.iter().flat_map(|j| j.depends_on.iter()) {
        match own.get(&p) {
            Some(&state) => {
                parents.insert(p, state);
            }
            None => outside.push(p),
        }
    }
    if !outside.is_empty() {
        outside.sort_unstable();
        outside.dedup();
        let ids = serde_json::to_string(&outside).expect("ids serialize");
        let mut stmt = conn.prepare_cached(sql!("job_parents_mark"))?;
        let rows = stmt.query_map([ids], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (id, state) = row?;
            parents.insert(id, state.parse::<JobState>()?);
        }
    }
    Ok(parents)
}

/// How `job` starts ([`JobInsertParams::hold`] when it may wait), with its `start` from
/// [`insert_jobs_as`]'s `starts`, if any.
fn starting(
    job: &JobInsertParams,
    sequence_busy: bool,
    parents: &HashMap<i64, JobState>,
    start: Option<&(bool, Option<(i64, String)>)>,
) -> Result<JobHold> {
    let mut hold = if job.waits() {
        job.hold(sequence_busy, parents)?
    } else {
        JobHold::default()
    };
    if let Some((has_dependents, workflow)) = start {
        hold.has_dependents = *has_dependents;
        hold.workflow = workflow.clone();
    }
    Ok(hold)
}

/// SQLite's limit of variables in one statement (SQLITE_MAX_VARIABLE_NUMBER).
const MAX_VARIABLES: usize = 32_766;
/// Variables of one row of `job_insert_rows.sql`.
const ROW_VARIABLES: usize = 10;
/// Rows one batch insert statement carries at most: as many as SQLite's limit of 32,766
/// variables allows.
pub const INSERT_ROWS: usize = MAX_VARIABLES / ROW_VARIABLES;
/// The sizes of the batch insert statements, largest first: a batch is cut into these (for
/// 20,000 jobs: six of [`INSERT_ROWS`], then 512s, 64s, 8s and 1s for the rest), so that at
/// most five of them take places in the connection's statement cache, whatever the sizes (and
/// five of each of the two below).
const INSERT_SIZES: [usize; 5] = [INSERT_ROWS, 512, 64, 8, 1];
/// Variables of one row of `job_insert_held_rows.sql`, and its sizes as [`INSERT_SIZES`].
const HELD_VARIABLES: usize = 16;
const HELD_SIZES: [usize; 5] = [MAX_VARIABLES / HELD_VARIABLES, 512, 64, 8, 1];
/// Variables of one row of `job_dep_insert_rows.sql`, and its sizes as [`INSERT_SIZES`].
const EDGE_VARIABLES: usize = 4;
const EDGE_SIZES: [usize; 5] = [MAX_VARIABLES / EDGE_VARIABLES, 512, 64, 8, 1];

/// Inserts jobs in multi-row statements, on the caller's connection: the batch path, without
/// a statement per row. Without `holds`, jobs that wait for nothing (`job_insert_rows.sql`);
/// with one hold per job, jobs starting as those say (`job_insert_held_rows.sql`; the caller
/// inserts the edges). Results are in input order; a job whose unique key an unfinished job
/// (or an earlier job of the batch) holds is not inserted and is answered with the holder.
fn insert_rows(
    conn: &Connection,
    jobs: &[JobInsertParams],
    holds: &[JobHold],
) -> Result<Vec<InsertResult>> {
    let sizes = if holds.is_empty() {
        INSERT_SIZES
    } else {
        HELD_SIZES
    };
    let mut out = Vec::with_capacity(jobs.len());
    for cut in cuts(jobs.len(), sizes) {
        let held = holds.get(cut.clone()).unwrap_or_default();
        insert_statement(conn, &jobs[cut], held, &mut out)?;
    }
    Ok(out)
}

/// `len` rows cut into statements of `sizes` (largest first, the last 1): their ranges.
fn cuts(len: usize, sizes: [usize; 5]) -> impl Iterator<Item = std::ops::Range<usize>> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let size = *sizes.iter().find(|&&n| n <= len - at)?;
        at += size;
        Some(at - size..at)
    })
}

/// A multi-row statement: `template` with its /*ROWS*/ replaced by `rows` rows of `variables`
/// variables each.
fn rows_sql(template: &str, variables: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; variables].join(","));
    template.replace("/*ROWS*/", &vec![row; rows].join(","))
}

/// One statement of [`insert_rows`]; appends each job's result to `out`.
fn insert_statement(
    conn: &Connection,
    jobs: &[JobInsertParams],
    holds: &[JobHold],
    out: &mut Vec<InsertResult>,
) -> Result<()> {
    let (template, variables) = if holds.is_empty() {
        (sql!("job_insert_rows"), ROW_VARIABLES)
    } else {
        (sql!("job_insert_held_rows"), HELD_VARIABLES)
    };
    let mut stmt = conn.prepare_cached(&rows_sql(template, variables, jobs.len()))?;
    for (i, job) in jobs.iter().enumerate() {
        let at = i * variables;
        let args =
            serde_json::to_string(&job.args).map_err(|e| Error::invalid("args", e.to_string()))?;
        let metadata = serde_json::to_string(&job.metadata)
            .map_err(|e| Error::invalid("metadata", e.to_string()))?;
        stmt.raw_bind_parameter(at + 1, &job.kind)?;
        stmt.raw_bind_parameter(at + 2, &job.queue)?;
        stmt.raw_bind_parameter(at + 3, args)?;
        stmt.raw_bind_parameter(at + 4, job.scheduled_at.map(fmt_time))?;
        stmt.raw_bind_parameter(at + 5, job.schedule_in.map(ahead))?;
        stmt.raw_bind_parameter(at + 6, job.priority)?;
        stmt.raw_bind_parameter(at + 7, job.max_attempts)?;
        stmt.raw_bind_parameter(at + 8, &job.unique_key)?;
        stmt.raw_bind_parameter(at + 9, metadata)?;
        stmt.raw_bind_parameter(at + 10, &job.concurrency_key)?;
        if let Some(hold) = holds.get(i) {
            stmt.raw_bind_parameter(at + 11, hold.waiting_for)?;
            stmt.raw_bind_parameter(at + 12, hold.state.map(|s| s.as_str()))?;
            stmt.raw_bind_parameter(at + 13, &hold.error)?;
            stmt.raw_bind_parameter(at + 14, hold.has_dependents)?;
            stmt.raw_bind_parameter(at + 15, hold.workflow.as_ref().map(|w| w.0))?;
            stmt.raw_bind_parameter(at + 16, hold.workflow.as_ref().map(|w| w.1.as_str()))?;
        }
    }
    struct Inserted {
        id: i64,
        state: String,
        created_at: String,
        scheduled_at: String,
        unique_key: Option<String>,
        errors: String,
        finalized_at: Option<String>,
    }
    let mut inserted: Vec<Inserted> = Vec::with_capacity(jobs.len());
    {
        let mut rows = stmt.raw_query();
        while let Some(r) = rows.next()? {
            inserted.push(Inserted {
                id: r.get(0)?,
                state: r.get(1)?,
                created_at: r.get(2)?,
                scheduled_at: r.get(3)?,
                unique_key: r.get(4)?,
                errors: r.get(5)?,
                finalized_at: r.get(6)?,
            });
        }
    }
    // RETURNING promises no order; ids ascend in input order.
    inserted.sort_unstable_by_key(|r| r.id);
    let mut times = TimeCache::default();
    // Rows come back for the jobs inserted, minus the jobs whose key was held (by an earlier
    // job or by an earlier row of this statement): match them up in one pass. A job starting
    // cancelled is never held (the key's index leaves cancelled rows out), so a held job's key
    // on a cancelled row that follows it is not its row.
    let mut rows = inserted.into_iter().peekable();
    for (i, job) in jobs.iter().enumerate() {
        let cancelled = holds.get(i).and_then(|h| h.state) == Some(JobState::Cancelled);
        let row = rows.next_if(|r| {
            r.unique_key == job.unique_key && (r.state == JobState::Cancelled.as_str()) == cancelled
        });
        match row {
            Some(r) => out.push(InsertResult {
                job: job.inserted_row(
                    r.id,
                    InsertedAt {
                        state: r.state.parse()?,
                        errors: if r.errors == "[]" {
                            Vec::new()
                        } else {
                            json_col(&r.errors)?
                        },
                        created_at: times.parse(r.created_at)?,
                        scheduled_at: times.parse(r.scheduled_at)?,
                        finalized_at: opt_time(r.finalized_at)?,
                    },
                ),
                inserted: true,
            }),
            None if job.unique_key.is_none() || cancelled => {
                return Err(Error::Database(
                    "the insert returned fewer rows than it was given".into(),
                ))
            }
            // Inside the one write transaction the holder cannot have finished since.
            None => out.push(held_by(conn, job)?),
        }
    }
    if rows.next().is_some() {
        return Err(Error::Database(
            "the insert returned more rows than it was given".into(),
        ));
    }
    Ok(())
}

/// Parses the times of a batch's rows, which are mostly the one clock reading of their
/// statement: the last one parsed is kept.
#[derive(Default)]
struct TimeCache {
    last: Option<(String, DateTime<Utc>)>,
}

impl TimeCache {
    fn parse(&mut self, s: String) -> rusqlite::Result<DateTime<Utc>> {
        if let Some((text, at)) = &self.last {
            if *text == s {
                return Ok(*at);
            }
        }
        let at = parse_time(&s)?;
        self.last = Some((s, at));
        Ok(at)
    }
}

fn one_job(conn: &Connection, sql: &str, p: impl rusqlite::Params) -> Result<Option<JobRow>> {
    Ok(conn
        .prepare_cached(sql)
        .and_then(|mut s| s.query_row(p, job_from_row).optional())?)
}

/// Runs one rescue statement; returns the new state of each rescued job.
fn rescued(
    c: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
) -> Result<Vec<(String, String, String)>> {
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt.query_map(p, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The parameters of `job_filter.sql`, and the limit as `?7`.
fn filter_params(p: &JobSearchParams, limit: u32) -> impl rusqlite::Params {
    let states = states_json(&p.filter.states);
    let values: [Box<dyn rusqlite::ToSql>; 7] = [
        Box::new(states),
        Box::new(p.filter.kind.clone()),
        Box::new(p.filter.queue.clone()),
        Box::new(p.filter.args_contains.clone()),
        Box::new(p.before_id),
        Box::new(p.max_id),
        Box::new(limit),
    ];
    rusqlite::params_from_iter(values)
}

/// States as the JSON array of names the filter and bulk statements read (`[]`: any state).
fn states_json(states: &[JobState]) -> String {
    serde_json::to_string(&states.iter().map(|s| s.as_str()).collect::<Vec<_>>())
        .expect("states serialize")
}

/// The order in which to cancel jobs listed together (a bulk cancel, a workflow's cancel) one
/// at a time, so that the listed jobs are left to the cancel and the others to their parents'
/// ends, as PostgreSQL's one statement does: it cancels every listed job before its statement
/// trigger looks at the ends, and the trigger names a child's first parent by id among them.
/// The listed jobs waiting for parents are first put out of their parents' reach
/// (job_cancel_many_first.sql), then every listed job is cancelled oldest first: a listed job
/// gets no entry, and a job not listed, cancelled by several listed parents' ends, names the
/// first of them by id. (No order alone does both: b and a listed, c after both, d listed after
/// b, e after a and d: d must go before b, b before a and a before d.)
pub(super) fn cancel_order(c: &Connection, mut ids: Vec<i64>) -> Result<Vec<i64>> {
    let listed = serde_json::to_string(&ids).expect("ids serialize");
    c.prepare_cached(sql!("job_cancel_many_first"))?
        .execute([listed])?;
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Runs a bulk write that returns `id, queue, state, attempted_by` per changed job.
fn changes(c: &Connection, sql: &str, p: impl rusqlite::Params) -> Result<Vec<JobChange>> {
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt
        .query_map(p, |r| {
            // The queue and worker as text: another program may have bound them as BLOBs (or
            // a number), and such a job, never claimed, is the one an operator cancels.
            Ok((
                r.get::<_, i64>(0)?,
                text_col(r.get_ref(1)?),
                r.get::<_, String>(2)?,
                opt_text_col(r.get_ref(3)?),
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(id, queue, state, attempted_by)| {
            Ok(JobChange {
                id,
                queue,
                state: state.parse()?,
                attempted_by,
            })
        })
        .collect()
}

#[async_trait::async_trait]
impl Driver for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn database(&self) -> Option<Database<'_>> {
        Some(Database::Sqlite(self))
    }

    fn wakeup(&self) -> &Arc<Wakeup> {
        &self.wakeup
    }

    async fn now(&self) -> Result<DateTime<Utc>> {
        let s: String = self
            .read(|c| Ok(c.query_row("SELECT porter_now()", [], |r| r.get(0))?))
            .await?;
        Ok(parse_time(&s)?)
    }

    async fn ping(&self) -> Result<()> {
        self.file_replaced()
            .await
            .map_or(Ok(()), |why| Err(Error::Unavailable(why)))?;
        self.read(|c| Ok(c.query_row("SELECT count(*) FROM porter_queues", [], |_| Ok(()))?))
            .await
    }

    async fn file_replaced(&self) -> Option<String> {
        self.guard.as_ref().and_then(|g| g.check().err())
    }

    async fn job_insert_many(&self, jobs: Vec<JobInsertParams>) -> Result<Vec<InsertResult>> {
        if gather::Gather::joins(&jobs) {
            return self.gather.insert(&self.writer, jobs).await;
        }
        self.writer.run(move |c| insert_jobs(c, &jobs)).await
    }

    async fn job_get(&self, id: i64) -> Result<Option<JobRow>> {
        // The row and what it recorded in one read transaction (one snapshot): read apart, a
        // job retried and run again in between was shown with its first run's end and its new
        // run's output.
        self.read(move |c| {
            let tx = c.unchecked_transaction()?;
            let Some(mut row) = one_job(&tx, sql!("job_get"), [id])? else {
                return Ok(None);
            };
            let recorded = tx
                .prepare_cached(sql!("job_output_get"))?
                .query_row([format!("[{id}]")], recorded_from_row)
                .optional()?;
            if let Some((_, recorded)) = recorded {
                (row.output, row.progress) = (recorded.output, recorded.progress);
            }
            Ok(Some(row))
        })
        .await
    }

    async fn batch_insert(&self, params: BatchInsertParams) -> Result<BatchInserted> {
        self.writer
            .run(move |c| batch::insert_batch(c, &params))
            .await
    }

    async fn batch_list(
        &self,
        before_id: Option<i64>,
        limit: u32,
        only: Option<i64>,
    ) -> Result<Vec<BatchRow>> {
        self.read(move |c| batch::list(c, before_id, limit, only))
            .await
    }

    async fn workflow_insert(&self, params: WorkflowInsertParams) -> Result<WorkflowInserted> {
        self.writer
            .run(move |c| workflow::insert_workflow(c, &params))
            .await
    }

    async fn workflow_list(&self, before_id: Option<i64>, limit: u32) -> Result<Vec<WorkflowRow>> {
        self.read(move |c| workflow::list(c, before_id, limit))
            .await
    }

    async fn workflow_get(&self, id: i64, page: StepPage) -> Result<Option<WorkflowParts>> {
        // One read transaction, so that the counts, the jobs and the edges agree.
        self.read(move |c| {
            let tx = c.unchecked_transaction()?;
            let out = workflow::get(&tx, id, page)?;
            tx.finish()?;
            Ok(out)
        })
        .await
    }

    async fn job_workflow(&self, id: i64) -> Result<Option<crate::store::workflow::JobWorkflow>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(sql!("job_workflow"))?;
            // Read leniently: a plain INSERT may tag a job with no step, or a BLOB.
            let mut rows = stmt.query_map([id], |r| {
                Ok(crate::store::workflow::JobWorkflow {
                    id: r.get(0)?,
                    name: text_col(r.get_ref(1)?),
                    step: text_col(r.get_ref(2)?),
                })
            })?;
            Ok(rows.next().transpose()?)
        })
        .await
    }

    async fn workflow_cancel(&self, id: i64) -> Result<Option<Vec<JobChange>>> {
        // Workers of other processes see the commit through their change watcher.
        self.writer.run(move |c| workflow::cancel(c, id)).await
    }

    async fn job_list(&self, params: JobListParams) -> Result<Vec<JobRow>> {
        let states = serde_json::to_string(&params.states).expect("states serialize");
        let limit = params.effective_limit();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(sql!("job_list"))?;
            let rows = stmt.query_map(
                params![params.kind, params.queue, params.before_id, states, limit],
                job_from_row,
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn job_counts(&self) -> Result<Vec<JobCountRow>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(sql!("job_counts"))?;
            let rows = stmt
                .query_map([], |r| {
                    // The queue as text: another program may have bound it as a BLOB.
                    Ok((
                        text_col(r.get_ref(0)?),
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(queue, state, count)| {
                    Ok(JobCountRow {
                        queue,
                        state: state.parse()?,
                        count,
                    })
                })
                .collect()
        })
        .await
    }

    async fn job_claim(&self, params: JobClaimParams, ahead: ClaimAhead) -> Result<JobClaimed> {
        let kinds = serde_json::to_string(&params.kinds).expect("kinds serialize");
        self.writer
            .run(move |c| {
                let jobs = claim_available(c, &params, &kinds)?;
                if !jobs.is_empty() {
                    return Ok(JobClaimed {
                        jobs,
                        held_back: false,
                        ..Default::default()
                    });
                }
                // Nothing taken: the queue is empty, paused, or has limits (job_claim.sql
                // leaves those to the limited claim). All of it inside this one write
                // transaction, which no other process's claim can interleave with.
                let limits = c
                    .prepare_cached(sql!("job_claim_limits"))?
                    .query_row([&params.queue], limits_from_row)
                    .optional()?;
                match limits {
                    Some(limits) => claim_limited(c, &params, ahead, &kinds, &limits),
                    None => Ok(JobClaimed::default()),
                }
            })
            .await
    }

    async fn job_complete_many(&self, fences: Vec<JobFence>) -> Result<Vec<JobFence>> {
        let batch = fences_json(&fences);
        self.writer.run(move |c| complete(c, batch)).await
    }

    async fn job_complete_claim(
        &self,
        fences: Vec<JobFence>,
        claims: Vec<JobClaimParams>,
    ) -> Result<(Vec<JobFence>, Vec<Vec<JobRow>>)> {
        let batch = fences_json(&fences);
        self.writer
            .run(move |c| {
                let completed = complete(c, batch)?;
                let mut claimed = Vec::with_capacity(claims.len());
                for params in &claims {
                    let kinds = serde_json::to_string(&params.kinds).expect("kinds serialize");
                    claimed.push(claim_available(c, params, &kinds)?);
                }
                Ok((completed, claimed))
            })
            .await
    }

    async fn job_fail(&self, p: JobFailParams) -> Result<Option<JobRow>> {
        self.writer
            .run(move |c| {
                let f = &p.fence;
                one_job(
                    c,
                    sql!("job_fail"),
                    params![
                        f.id,
                        f.attempt,
                        f.worker_id,
                        p.error,
                        p.trace,
                        ahead(p.retry_in),
                        p.discard
                    ],
                )
            })
            .await
    }

    async fn job_snooze(&self, p: JobSnoozeParams) -> Result<Option<JobRow>> {
        self.writer
            .run(move |c| {
                let f = &p.fence;
                one_job(
                    c,
                    sql!("job_snooze"),
                    params![
                        f.id,
                        f.attempt,
                        f.worker_id,
                        ahead(p.delay),
                        super::CANCELLED_BY_USER
                    ],
                )
            })
            .await
    }

    async fn job_output_record(&self, p: JobRecordParams) -> Result<bool> {
        let text = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
        let (output, progress) = (text(&p.output), text(&p.progress));
        self.writer
            .run(move |c| {
                let f = &p.fence;
                let written = c
                    .prepare_cached(sql!("job_output_record"))
                    .and_then(|mut s| {
                        s.query_row(
                            params![f.id, f.attempt, f.worker_id, output, progress],
                            |_| Ok(()),
                        )
                        .optional()
                    })?;
                Ok(written.is_some())
            })
            .await
    }

    async fn job_output_get(&self, ids: Vec<i64>) -> Result<Vec<(i64, JobOutput)>> {
        let ids = serde_json::to_string(&ids).expect("ids serialize");
        self.read(move |c| {
            let mut stmt = c.prepare_cached(sql!("job_output_get"))?;
            let rows = stmt.query_map([ids], recorded_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn job_links(
        &self,
        id: i64,
        children: bool,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<JobLink>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(sql!("job_links"))?;
            let rows = stmt
                .query_map(params![id, children, after_id, limit], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        // The kind as text: another program may have bound it as a BLOB.
                        text_col(r.get_ref(2)?),
                        r.get::<_, bool>(3)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(id, state, kind, after_any)| {
                    JobLink::from_columns(id, &state, kind, after_any)
                })
                .collect()
        })
        .await
    }

    async fn job_parent_outputs(
        &self,
        id: i64,
    ) -> Result<Vec<(JobLink, Option<serde_json::Value>)>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(sql!("job_parent_outputs"))?;
            let rows = stmt
                .query_map([id], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        // The kind as text: another program may have bound it as a BLOB.
                        text_col(r.get_ref(2)?),
                        r.get::<_, bool>(3)?,
                        r.get::<_, Option<String>>(4)?
                            .map(|t| json_col(&t))
                            .transpose()?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(id, state, kind, after_any, output)| {
                    Ok((JobLink::from_columns(id, &state, kind, after_any)?, output))
                })
                .collect()
        })
        .await
    }

    async fn job_deps(&self, id: i64, limit: Option<u32>) -> Result<JobDeps> {
        let limit = limit.map_or(-1, i64::from);
        self.read(move |c| {
            let mut stmt = c.prepare_cached(sql!("job_deps"))?;
            let rows = stmt
                .query_map(params![id, limit], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        // The kind as text: another program may have bound it as a BLOB.
                        text_col(r.get_ref(3)?),
                        r.get::<_, bool>(4)?,
                        r.get::<_, i64>(5)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut deps = JobDeps::default();
            for (relation, id, state, kind, after_any, total) in rows {
                let link = JobLink::from_columns(id, &state, kind, after_any)?;
                deps.add(&relation, link, total);
            }
            // Read leniently: a plain INSERT may have put anything in batch_id.
            let mut stmt = c.prepare_cached(sql!("job_batch"))?;
            deps.batch = stmt
                .query_row([id], |r| {
                    Ok(match r.get_ref(0)? {
                        rusqlite::types::ValueRef::Integer(b) => Some(JobBatch {
                            id: b,
                            callback: matches!(
                                r.get_ref(1)?,
                                rusqlite::types::ValueRef::Integer(1)
                            ),
                        }),
                        _ => None,
                    })
                })
                .optional()?
                .flatten();
            Ok(deps)
        })
        .await
    }

    async fn job_list_running(
        &self,
        worker_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<JobFence>> {
        let worker = worker_id.to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(sql!("job_list_running"))?;
            let rows = stmt.query_map(params![&worker, fmt_time(since)], |r| {
                Ok(JobFence {
                    id: r.get(0)?,
                    attempt: r.get(1)?,
                    worker_id: worker.clone(),
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn job_release(&self, p: JobReleaseParams) -> Result<Option<JobRow>> {
        // Other processes' producers see the commit through their change watcher.
        self.writer
            .run(move |c| {
                let f = &p.fence;
                // Given back unstarted, a job whose parent ran again since its claim (asked
                // while it still runs under the fence) is judged again by its parents.
                let judge = !p.started
                    && c.prepare_cached(sql!("job_parents_ran_again"))?
                        .exists(params![f.worker_id, format!("[{}]", f.id)])?;
                let row = one_job(
                    c,
                    sql!("job_release"),
                    params![
                        f.id,
                        f.attempt,
                        f.worker_id,
                        p.reason,
                        p.started,
                        super::CANCELLED_BY_USER
                    ],
                )?;
                if !judge
                    || row.as_ref().is_none_or(|r| r.state != JobState::Available)
                    || c.prepare_cached(sql!("job_release_wait"))?
                        .execute([f.id])?
                        == 0
                {
                    return Ok(row);
                }
                c.prepare_cached(sql!("job_release_edges"))?
                    .execute([f.id])?;
                c.prepare_cached(sql!("job_release_decide"))?
                    .execute([f.id])?;
                one_job(c, sql!("job_get"), [f.id])
            })
            .await
    }

    async fn job_cancel_running(&self, p: JobCancelRunningParams) -> Result<Option<JobRow>> {
        self.writer
            .run(move |c| {
                let f = &p.fence;
                one_job(
                    c,
                    sql!("job_cancel_running"),
                    params![f.id, f.attempt, f.worker_id, p.reason, p.started],
                )
            })
            .await
    }

    async fn job_cancel(&self, id: i64) -> Result<Option<JobRow>> {
        // Workers of other processes see the commit through their change watcher.
        self.writer
            .run(move |c| one_job(c, sql!("job_cancel"), [id]))
            .await
    }

    async fn job_cancel_requests(&self, worker_id: &str, among: &[i64]) -> Result<Vec<JobFence>> {
        self.fences_among(sql!("job_cancel_requests"), worker_id, among)
            .await
    }

    async fn job_running_among(&self, worker_id: &str, among: &[i64]) -> Result<Vec<JobFence>> {
        self.fences_among(sql!("job_running_among"), worker_id, among)
            .await
    }

    async fn job_completed_among(&self, worker_id: &str, among: &[i64]) -> Result<Vec<JobFence>> {
        self.fences_among(sql!("job_completed_among"), worker_id, among)
            .await
    }

    async fn job_parents_ran_again(&self, worker_id: &str, among: &[i64]) -> Result<Vec<JobFence>> {
        self.fences_among(sql!("job_parents_ran_again"), worker_id, among)
            .await
    }

    async fn job_retry(&self, id: i64) -> Result<Option<JobRow>> {
        self.writer
            .run(move |c| {
                let row = one_job(c, sql!("job_retry"), [id])?;
                if row.is_some() {
                    c.prepare_cached(sql!("job_retry_edges"))?.execute([id])?;
                }
                Ok(row)
            })
            .await
    }

    async fn job_delete_finalized(&self, p: JobDeleteFinalizedParams) -> Result<u64> {
        self.writer
            .run(move |c| {
                let mut stmt = c.prepare_cached(sql!("job_delete_finalized"))?;
                let mut deleted = 0u64;
                for (state, age) in [
                    ("completed", p.completed),
                    ("cancelled", p.cancelled),
                    ("discarded", p.discarded),
                ] {
                    let left = u64::from(p.limit).saturating_sub(deleted);
                    if left == 0 {
                        break;
                    }
                    let n = stmt.execute(params![state, ago(age), left])?;
                    deleted += n as u64;
                }
                Ok(deleted)
            })
            .await
    }

    async fn job_rescue(&self, p: JobRescueParams) -> Result<Rescued> {
        // Separate writes (each in its own savepoint of the writer's group, sent together so
        // they still share one commit): one failing never undoes another, so the rescue of a
        // lost worker's jobs happens whatever the stuck rescue does.
        use futures::FutureExt;
        let (lease, limit, by) = (ago(p.lease), p.limit, p.by);
        let lease_too = lease.clone();
        // The rescuer's own limits, for jobs whose worker registered none.
        let limits: Vec<(String, i64)> = p
            .stuck_after
            .into_iter()
            .map(|(k, d)| (k, stored_ms(d)))
            .collect();
        let limits = serde_json::to_string(&limits).expect("limits serialize");
        let ending = serde_json::to_string(&p.ending).expect("ids serialize");
        let by_too = by.clone();
        let passes = vec![
            self.writer
                .run(move |c| rescued(c, sql!("job_rescue_lost"), params![lease_too, limit, by]))
                .boxed(),
            self.writer
                .run(move |c| {
                    rescued(
                        c,
                        sql!("job_rescue_stuck"),
                        params![limits, limit, lease, by_too, ending],
                    )
                })
                .boxed(),
        ];
        Rescued::from_outcomes(futures::future::join_all(passes).await)
    }

    async fn queue_due(&self) -> Result<Vec<QueueDueRow>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(sql!("queue_due"))?;
            let rows = stmt.query_map([], |r| {
                // The earliest has porter's shape but may still not be a time (February 30,
                // another program's): the queue then reads as due now, as one whose times are
                // all in other formats does, rather than failing /metrics.
                let now = parse_time(&r.get::<_, String>(3)?)?;
                Ok(QueueDueRow {
                    queue: text_col(r.get_ref(0)?),
                    depth: r.get(1)?,
                    oldest_due_at: parse_time(&value_text(r.get_ref(2)?)).unwrap_or(now),
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn queue_list(&self, after: Option<String>, limit: u32) -> Result<Vec<QueueRow>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(sql!("queue_list"))?;
            let rows = stmt.query_map(params![after, limit], queue_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn queue_limited(&self) -> Result<Vec<QueueRow>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(sql!("queue_limited"))?;
            let rows = stmt.query_map([], queue_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn queue_limit_set(&self, p: QueueLimitParams) -> Result<QueueRow> {
        self.writer
            .run(move |c| {
                let (rate, rate_ms) = rate_columns(p.set.rate);
                let (key_rate, key_rate_ms) = rate_columns(p.set.rate_per_key);
                c.prepare_cached(sql!("queue_limit_set"))?.execute(params![
                    p.queue,
                    p.clear,
                    p.set.concurrency,
                    p.set.per_key,
                    rate,
                    rate_ms,
                    key_rate,
                    key_rate_ms
                ])?;
                c.prepare_cached(sql!("queue_starts_forget"))?
                    .execute([&p.queue])?;
                Ok(c.prepare_cached(sql!("queue_get"))?
                    .query_row([&p.queue], queue_from_row)
                    .optional()?
                    .unwrap_or_else(|| QueueRow::unrecorded(&p.queue)))
            })
            .await
    }

    async fn queue_limit_usage(&self) -> Result<Vec<QueueKeyUsage>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(sql!("queue_limit_usage"))?;
            let rows = stmt.query_map([], |r| {
                Ok(QueueKeyUsage {
                    queue: text_col(r.get_ref(0)?),
                    key: opt_text_col(r.get_ref(1)?),
                    available: r.get(2)?,
                    running: r.get(3)?,
                    key_starts: r.get(4)?,
                    queue_starts: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn queue_pause(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        self.writer
            .run(move |c| {
                c.execute(sql!("queue_pause"), [name])?;
                Ok(())
            })
            .await
    }

    async fn queue_changes(&self, name: &str) -> Result<i64> {
        let name = name.to_string();
        self.read(move |c| {
            let n: Option<i64> = c
                .prepare_cached(sql!("queue_changes"))?
                .query_row([name], |r| r.get(0))
                .optional()?;
            Ok(n.unwrap_or(0))
        })
        .await
    }

    async fn queue_resume(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        self.writer
            .run(move |c| {
                c.execute(sql!("queue_resume"), [name])?;
                Ok(())
            })
            .await
    }

    async fn worker_heartbeat(&self, p: WorkerHeartbeatParams) -> Result<()> {
        self.writer
            .run(move |c| {
                c.prepare_cached(sql!("worker_heartbeat"))
                    .and_then(|mut s| s.execute(params![p.id, p.host, p.pid]))?;
                Ok(())
            })
            .await
    }

    async fn worker_register(&self, p: WorkerRegisterParams) -> Result<()> {
        // The writer's priority lane: a heartbeat never waits behind queued job writes.
        let limits = stored_limits(&p.stuck_after).to_string();
        let lease = stored_ms(p.lease);
        let queues = serde_json::to_string(&p.queues).expect("names serialize");
        let kinds = serde_json::to_string(&p.kinds).expect("names serialize");
        let (since_last, margin) = crate::store::heartbeat_gap(&p);
        self.writer
            .run_urgent(move |c| {
                c.prepare_cached(sql!("worker_register"))
                    .and_then(|mut s| {
                        s.execute(params![
                            p.id, p.host, p.pid, lease, limits, queues, kinds, p.unsteady,
                            since_last, margin
                        ])
                    })?;
                Ok(())
            })
            .await
    }

    async fn worker_count_serving(&self, p: WorkerServingParams) -> Result<i64> {
        self.read(move |c| {
            Ok(c.prepare_cached(sql!("worker_count_serving"))?
                .query_row(params![ago(p.lease), p.queue, p.kind], |r| r.get(0))?)
        })
        .await
    }

    async fn job_unserved(&self, lease: Duration) -> Result<Vec<UnservedRow>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(sql!("job_unserved"))?;
            let rows = stmt.query_map([ago(lease)], |r| {
                Ok(UnservedRow {
                    queue: text_col(r.get_ref(0)?),
                    kind: text_col(r.get_ref(1)?),
                    count: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn worker_delete(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.writer
            .run(move |c| {
                c.execute(sql!("worker_delete"), [id])?;
                Ok(())
            })
            .await
    }

    async fn worker_list(&self) -> Result<Vec<WorkerRow>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(sql!("worker_list"))?;
            let rows = stmt.query_map([], |r| {
                Ok(WorkerRow {
                    id: r.get(0)?,
                    host: r.get(1)?,
                    pid: r.get(2)?,
                    started_at: time_outside_jobs_or_epoch(r.get_ref(3)?),
                    heartbeat_at: time_outside_jobs_or_epoch(r.get_ref(4)?),
                    // Anything but a list of names (another program's row) reads as not
                    // said, as an old registration: it failed the listing until 7 Dec.
                    queues: r
                        .get::<_, Option<String>>(5)?
                        .and_then(|t| serde_json::from_str(&t).ok()),
                    kinds: r
                        .get::<_, Option<String>>(6)?
                        .and_then(|t| serde_json::from_str(&t).ok()),
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn periodic_enqueue(&self, p: PeriodicEnqueueParams) -> Result<Option<InsertResult>> {
        self.writer
            .run(move |c| {
                // One write transaction: nobody else can read-then-write between these.
                let recorded: Option<(i64, i64)> = c
                    .query_row(sql!("periodic_get"), [&p.name], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .optional()?;
                let last = recorded.map(|(last, _)| last);
                // A slot recorded past now by more than the slack was a clock's that ran
                // ahead: compared with now, not with this slot, which may be an interval
                // behind it (a pass that began before the slot turned).
                let ahead_past = recorded.map_or(i64::MAX, |(_, now)| {
                    now.saturating_add(crate::store::PERIODIC_CLOCK_SLACK_MS)
                });
                match last {
                    Some(last) if last >= p.slot && last <= ahead_past => return Ok(None),
                    _ => c.execute(sql!("periodic_set"), params![p.name, p.slot, ahead_past])?,
                };
                let ran = match last {
                    // A name seen for the first time only records its slot.
                    None => true,
                    // A mark a clock that ran ahead left, replaced: the slot due now may have
                    // run before the clock jumped.
                    Some(last) if last > ahead_past => {
                        c.query_row(sql!("periodic_slot_ran"), params![p.name, p.slot], |r| {
                            r.get(0)
                        })?
                    }
                    Some(_) => false,
                };
                if ran {
                    return Ok(None);
                }
                Ok(insert_jobs(c, std::slice::from_ref(&p.job))?.pop())
            })
            .await
    }

    async fn job_search(&self, p: JobSearchParams) -> Result<Vec<JobRow>> {
        let sql = concat!(
            "SELECT * FROM porter_jobs\n",
            include_str!("sql/job_filter.sql"),
            "\nORDER BY id DESC LIMIT ?7"
        );
        self.read(move |c| {
            let mut stmt = c.prepare_cached(sql)?;
            let rows = stmt.query_map(filter_params(&p, p.limit), job_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn job_search_ids(&self, p: JobSearchParams) -> Result<Vec<i64>> {
        let sql = concat!(
            "SELECT id FROM porter_jobs\n",
            include_str!("sql/job_filter.sql"),
            "\nORDER BY id DESC LIMIT ?7"
        );
        self.read(move |c| {
            let mut stmt = c.prepare_cached(sql)?;
            let rows = stmt.query_map(filter_params(&p, p.limit), |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn job_count_matching(&self, filter: JobFilter) -> Result<MatchCount> {
        // ?7 (the limit) is compared with itself so that the statement takes the same seven
        // parameters as the others.
        let sql = concat!(
            "SELECT count(*), max(id) FROM porter_jobs\n",
            include_str!("sql/job_filter.sql"),
            "\nAND ?7 = ?7"
        );
        let p = JobSearchParams {
            filter,
            ..Default::default()
        };
        self.read(move |c| {
            Ok(c.prepare_cached(sql)?
                .query_row(filter_params(&p, 0), |r| {
                    Ok(MatchCount {
                        count: r.get(0)?,
                        max_id: r.get(1)?,
                        in_progress: Vec::new(),
                    })
                })?)
        })
        .await
    }

    async fn job_retry_many(&self, ids: Vec<i64>, states: Vec<JobState>) -> Result<Vec<JobChange>> {
        // Other processes' producers see the commit through their change watcher.
        let ids = serde_json::to_string(&ids).expect("ids serialize");
        let states = states_json(&states);
        self.writer
            .run(move |c| changes(c, sql!("job_retry_many"), [ids, states]))
            .await
    }

    async fn job_cancel_many(
        &self,
        ids: Vec<i64>,
        states: Vec<JobState>,
    ) -> Result<Vec<JobChange>> {
        // Workers of other processes see the commit through their change watcher. A job at a
        // time, in the order of cancel_order, those the filter matches before any is cancelled
        // (job_cancel_many_matching.sql).
        let states = states_json(&states);
        self.writer
            .run(move |c| {
                let ids: Vec<i64> = if states == "[]" {
                    ids
                } else {
                    let listed = serde_json::to_string(&ids).expect("ids serialize");
                    let mut stmt = c.prepare_cached(sql!("job_cancel_many_matching"))?;
                    let rows = stmt.query_map(params![listed, states], |r| r.get(0))?;
                    rows.collect::<rusqlite::Result<_>>()?
                };
                let mut out = Vec::with_capacity(ids.len());
                for id in cancel_order(c, ids)? {
                    out.extend(changes(c, sql!("job_cancel_many"), params![id])?);
                }
                out.sort_unstable_by_key(|change| change.id);
                Ok(out)
            })
            .await
    }

    async fn job_delete_many(&self, ids: Vec<i64>, states: Vec<JobState>) -> Result<u64> {
        let ids = serde_json::to_string(&ids).expect("ids serialize");
        let states = states_json(&states);
        self.writer
            .run(move |c| Ok(c.execute(sql!("job_delete_many"), [ids, states])? as u64))
            .await
    }

    async fn job_running_by_worker(&self) -> Result<Vec<(String, i64)>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(sql!("job_running_by_worker"))?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn periodic_list(&self) -> Result<Vec<PeriodicRow>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(sql!("periodic_list"))?;
            let rows = stmt.query_map([], |r| {
                Ok(PeriodicRow {
                    name: r.get(0)?,
                    last_slot: r.get(1)?,
                    last_job_id: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn job_throughput(&self, since: DateTime<Utc>) -> Result<Vec<ThroughputRow>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(sql!("job_throughput"))?;
            let rows = stmt.query_map([fmt_time(since)], |r| {
                Ok((value_text(r.get_ref(0)?).into_owned(), r.get(1)?, r.get(2)?))
            })?;
            let mut minutes = Vec::new();
            for row in rows {
                let (minute, completed, discarded) = row?;
                // A time in another format than porter's (another program's plain INSERT)
                // names no minute: it is left out rather than failing the chart.
                if let Ok(minute) = parse_time(&minute) {
                    minutes.push(ThroughputRow {
                        minute,
                        completed,
                        discarded,
                    });
                }
            }
            Ok(minutes)
        })
        .await
    }
}

#[cfg(test)]
mod claim_tests;
#[cfg(test)]
mod dep_tests;
#[cfg(test)]
mod insert_tests;
#[cfg(test)]
mod watch_tests;
