//! PostgreSQL backend: a `sqlx` pool, many processes, row locks.
//!
//! * **Pool** of [`POOL_SIZE`] connections by default ([`OpenOptions::pool_size`], the CLI's
//!   `--db-pool-size`); connecting gives up after [`CONNECT_TIMEOUT`] with
//!   [`Error::Unavailable`] (the URL in the message has its credentials redacted). When no
//!   connection frees up within that time, the error names the pool's size and what is busy.
//! * **Large batches** are sent in statements of at most [`INSERT_CHUNK_BYTES`] of args, all in
//!   the one transaction: a batch stays all or nothing, and no message nears the server's
//!   1 GB limit.
//! * **Migrations** are embedded (`migrations-postgres/`) and run on open, one transaction each
//!   under an advisory lock, so processes opening the same database at once take turns; they
//!   are recorded in porter's own `porter_migrations`, never in `_sqlx_migrations` (see
//!   [`migrations`]). A database that has a migration this binary does not
//!   carry is refused with [`Error::DatabaseTooNew`].
//! * **Concurrency**: claims, promotions and rescues take rows with `FOR UPDATE SKIP LOCKED`,
//!   so producers of many processes never queue behind each other; worker-side writes are
//!   fenced on (id, running, attempt, worker) like on SQLite.
//! * **Wake-ups across processes**: inserts send `pg_notify('porter_insert', queue)` inside
//!   their transaction (delivered at commit, never for a rollback); a task LISTENs on that
//!   channel and wakes the queue's producers in this process. A cancel request for a running
//!   job sends `pg_notify('porter_cancel', worker_id)` the same way, which wakes that worker's
//!   cancel watcher. The task reconnects by itself, wakes every producer and cancel watcher
//!   after a reconnect (notifications sent meanwhile are lost), and stops when the store is
//!   dropped.
//! * **Enqueue from SQL**: the function `porter_enqueue(kind, args, ...)` (migration 0008)
//!   inserts a job from any client with the library's checks, unique-key answer, waits
//!   (sequence, parents) and `porter_insert` NOTIFY; tests/any_language.rs holds it to that.
//! * **Times** are `timestamptz` from the database clock (`now()`), where SQLite keeps text in
//!   one fixed format; durations are bound as seconds (`float8`). The SQL files sit beside this
//!   one with the same names as SQLite's; each says where and why it differs beyond that.
//! * **Tests** give each test its own schema through the URL
//!   (`?options=-c%20search_path%3Dname`, see [`PgStore::create_test_schema`]).

pub mod bench;
pub mod copy;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{Connection, Executor as _, PgConnection, Row};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::clock::Clock;
use super::migrations::{self, MigrationSet};
use super::*;
use crate::error::{Error, Result};
use crate::job::{AttemptError, JobRow, JobState};

/// Connections in the pool by default (one of them is held by the LISTEN task).
pub const POOL_SIZE: u32 = super::DEFAULT_POOL_SIZE;
/// Most args and metadata (as JSON) one insert statement carries; a larger batch is sent as
/// several statements in its one transaction.
pub const INSERT_CHUNK_BYTES: usize = 16 * 1024 * 1024;
/// How long connecting (or waiting for a free connection) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an idle connection taken for a second half may take to answer a ping.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// A connection of the pool.
type PgPooled = sqlx::pool::PoolConnection<sqlx::Postgres>;
/// The NOTIFY channel inserts are announced on; the payload is the queue name.
pub const NOTIFY_CHANNEL: &str = "porter_insert";
/// The NOTIFY channel cancel requests for running jobs are announced on; the payload is the id
/// of the worker that runs the job.
pub const CANCEL_CHANNEL: &str = "porter_cancel";
/// The NOTIFY channel a queue's pause or new limits are announced on; the payload is the queue
/// name. Workers give back the jobs of that queue they claimed ahead before the change (see
/// `porter_queues.changes`) and have not started.
pub const CONTROL_CHANNEL: &str = "porter_queue_control";
/// How long the LISTEN task waits before trying again after an error.
const LISTEN_RETRY: Duration = Duration::from_secs(1);
/// How often an insert tries again when a unique key's holder finished between its insert
/// and the read of the holder (READ COMMITTED lets that happen; it is rare).
const UNIQUE_ROUNDS: usize = 5;
/// Most finished jobs one retention statement deletes.
const DELETE_BATCH: u64 = 1_000;

macro_rules! sql {
    ($name:literal) => {
        include_str!(concat!("sql/", $name, ".sql"))
    };
}

/// `$write` (an expression that borrows `$conn` and answers a `Result`) written from a
/// [`RetryPoint`] on `$conn` until it is not a deadlock's victim: its value, or its error
/// (returned with `?`). A loop of the caller's own, where a closure could not lend the
/// connection out again each try.
macro_rules! from_retry_point {
    ($conn:expr, $what:expr, $write:expr) => {{
        let mut point = RetryPoint::open($conn).await?;
        loop {
            let out = $write;
            if let Some(out) = point.settle($conn, $what, out).await? {
                break out;
            }
        }
    }};
}

mod batch;
mod cursor;
mod group;
mod workflow;
pub use batch::batch_insert_tx;
pub use workflow::workflow_insert_tx;

/// The PostgreSQL store. Share it behind an `Arc`; dropping it stops its LISTEN task.
pub struct PgStore {
    /// The connection pool (also available to callers for their own transactions).
    pool: PgPool,
    /// Worker heartbeats' own connection: a heartbeat never waits for a pool busy with job
    /// work (issue 11.6). Connected on first use.
    heartbeats: PgPool,
    /// Producers of this process, woken by inserts here and by NOTIFY from elsewhere.
    wakeup: Arc<Wakeup>,
    /// Group commit for small inserts (see [`group`]).
    inserter: group::Inserter,
    /// Where each queue's plain claim starts (see [`cursor`]).
    cursors: Arc<cursor::Cursors>,
    /// The clock the pool sets on each connection it hands out (tests); [`PgStore::idle_conn`]
    /// sets it itself.
    clock: Option<Clock>,
    /// Stops the LISTEN task when the store goes.
    _listener: DropGuard,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("pool_size", &self.pool.size())
            .finish()
    }
}

/// Every sqlx error becomes the library's error here, so the store's code converts with `?`
/// alone (an exhausted pool is explained where connections are taken).
impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        map_err(e)
    }
}

/// SQLSTATE of a transaction PostgreSQL aborted to break a deadlock.
const DEADLOCK_DETECTED: &str = "40P01";

/// How often a write is tried while PostgreSQL picks it as a deadlock's victim.
const DEADLOCK_TRIES: u32 = 5;

/// Whether `e` is a transaction aborted to break a deadlock (see [`map_err`]).
fn deadlocked(e: &Error) -> bool {
    matches!(e, Error::Database(text) if text.ends_with(&format!("(SQLSTATE {DEADLOCK_DETECTED})")))
}

/// Runs `write` (a transaction of its own) again while PostgreSQL aborts it to break a
/// deadlock, up to [`DEADLOCK_TRIES`] times. For the writes whose lock order cannot be the
/// one every other write keeps: the other side of the deadlock went on, and the write runs
/// again on what it left.
async fn again_if_deadlocked<T, F, Fut>(what: &str, write: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    again_while(what, deadlocked, write).await
}

/// [`again_if_deadlocked`], also writing again while `retried` says so of the error, up to the
/// same [`DEADLOCK_TRIES`] tries.
async fn again_while<T, F, Fut>(what: &str, retried: fn(&Error) -> bool, mut write: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut tries = 1;
    loop {
        match write().await {
            // The other side, woken as this try ended, takes the rows it waited for before the
            // next try asks for them again: written again at once, the try could take them
            // first, and the two met again (a second wait of `deadlock_timeout`).
            Err(e) if again_when(what, &mut tries, &e, retried) => {
                tokio::time::sleep(RETRY_PAUSE * (tries - 1)).await;
            }
            out => return out,
        }
    }
}

/// An insert in a transaction of porter's own (`write` begins and commits it): written again
/// whole after a deadlock when it locks parents (`locks_parents`), which it holds to the end
/// (see [`RetryPoint`]), else once.
async fn insert_written_again<T, F, Fut>(locks_parents: bool, what: &str, mut write: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    if locks_parents {
        again_if_deadlocked(what, write).await
    } else {
        write().await
    }
}

/// Whether a write that failed with `e` on its try number `tries` is to be written again (a
/// deadlock's victim with tries left); counts the try.
fn again(what: &str, tries: &mut u32, e: &Error) -> bool {
    again_when(what, tries, e, deadlocked)
}

/// [`again`], for the errors `retried` names.
fn again_when(what: &str, tries: &mut u32, e: &Error, retried: fn(&Error) -> bool) -> bool {
    if *tries >= DEADLOCK_TRIES || !retried(e) {
        return false;
    }
    tracing::debug!(error = %e, tries = *tries, "{what} failed; writing it again");
    *tries += 1;
    true
}

/// A deadlock's victim, or a write that met a unique key an insert committed while the write
/// waited for it: judged from the write's snapshot, the key was free (PostgreSQL only; written
/// again, the write sees the holder and leaves that job as it is).
fn deadlocked_or_key_taken(e: &Error) -> bool {
    deadlocked(e) || matches!(e, Error::Conflict(text) if text.contains("porter_jobs_unique_key"))
}

/// Maps a sqlx error to the library's error. The only place that looks at driver codes.
pub fn map_err(e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let text = match db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .and_then(|p| p.detail())
            {
                Some(detail) => format!("{}: {detail}", db.message()),
                None => db.message().to_string(),
            };
            match code.as_str() {
                // unique_violation
                "23505" => Error::Conflict(text),
                // check_violation, not_null_violation: input the schema refuses
                "23514" | "23502" => Error::invalid("job", text),
                // connection_exception class, too_many_connections, admin/crash shutdown,
                // cannot_connect_now, database_dropped; and the database away as an outage
                // is, until an operator mends it: a login refused (invalid_authorization_
                // specification, invalid_password: class 28) and a database that does not
                // exist (invalid_catalog_name, 3D000: dropped under a running process). They
                // were database errors: 500 "internal error" on every route, where `/healthz`
                // says 503 for an outage.
                // In porter's words: the server's name the role, the database or the client's
                // address (pg_hba.conf), and a 503 reaches anyone who asks `/healthz`. The
                // server's words go to the log.
                c if c.starts_with("28") || c == "3D000" => {
                    tracing::warn!(sqlstate = c, server = %text, "the database refused porter");
                    Error::Unavailable(if c == "3D000" {
                        format!(
                            "the database the URL names does not exist (SQLSTATE {c}; dropped?)"
                        )
                    } else {
                        format!("the database refused porter's login (SQLSTATE {c}): check the URL's user and password, and the server's pg_hba.conf")
                    })
                }
                c if c.starts_with("08")
                    || matches!(c, "53300" | "57P01" | "57P02" | "57P03" | "57P04") =>
                {
                    Error::Unavailable(text)
                }
                // The code stays in the text, where `deadlocked` finds it.
                DEADLOCK_DETECTED => Error::Database(format!("{text} (SQLSTATE {code})")),
                // The row written refused (a data exception, a constraint, an application's
                // trigger raising): the code stays in the text, where `store::refusal` finds
                // it.
                c if c.starts_with("22") || c.starts_with("23") || c.starts_with("P0") => {
                    Error::Database(format!("{text} (SQLSTATE {code})"))
                }
                _ => Error::Database(text),
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => Error::Unavailable(e.to_string()),
        _ => Error::Database(e.to_string()),
    }
}

/// A driver error of taking a connection from `pool`, with the cause spelt out when the pool
/// had no free connection in time.
fn pool_err(pool: &PgPool, e: sqlx::Error) -> Error {
    if !matches!(e, sqlx::Error::PoolTimedOut) {
        return map_err(e);
    }
    let size = pool.options().get_max_connections();
    Error::Unavailable(format!(
        "no free database connection within {CONNECT_TIMEOUT:?}: the pool's {size} connections \
         are busy ({} open, {} idle, one of them listening for wake-ups) or the server refuses \
         new ones; raise the pool size (--db-pool-size / PORTER_DB_POOL_SIZE, now {size}), or \
         the server's max_connections if it is full",
        pool.size(),
        pool.num_idle(),
    ))
}

impl PgStore {
    /// Connects to the database a `postgres://` URL names and migrates it.
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_at(url, None, &OpenOptions::default()).await
    }

    /// Like [`PgStore::open`], with options (the pool size).
    pub async fn open_with(url: &str, open_options: &OpenOptions) -> Result<Self> {
        Self::open_at(url, None, open_options).await
    }

    /// Opens like [`PgStore::open`], reading "now" from `clock` (see [`crate::store::clock`]):
    /// every connection sets `porter.now` from the clock when the pool hands it out.
    pub async fn open_with_clock(url: &str, clock: Clock) -> Result<Self> {
        Self::open_at(url, Some(clock), &OpenOptions::default()).await
    }

    pub(crate) async fn open_at(
        url: &str,
        clock: Option<Clock>,
        open_options: &OpenOptions,
    ) -> Result<Self> {
        let pool_size = open_options.effective_pool_size()?;
        let options = connect_options(url, true)?;
        // One plain connection first: the pool would retry until its timeout and then report
        // only that, where this reports why (refused, unknown host, bad password, no database).
        let mut conn = connect(&options, url).await?;
        run_migrations(&mut conn, &migrations::CORE).await?;
        conn.close().await?;

        let mut pool = PgPoolOptions::new()
            .max_connections(pool_size)
            .acquire_timeout(CONNECT_TIMEOUT);
        if let Some(clock) = clock.clone() {
            // A new connection and every connection handed out again read the clock as it is
            // then; only stores opened with a clock pay this round trip.
            let fresh = clock.clone();
            pool = pool
                .after_connect(move |conn, _| {
                    let at = clock_setting(&fresh);
                    Box::pin(async move { set_clock(conn, at).await })
                })
                .before_acquire(move |conn, _| {
                    let at = clock_setting(&clock);
                    Box::pin(async move { set_clock(conn, at).await.map(|()| true) })
                });
        }
        // Heartbeats get a pool of one connection of their own, so they never queue for the
        // main pool's connections behind job work (issue 11.6).
        let heartbeats = pool
            .clone()
            .max_connections(1)
            .connect_lazy_with(options.clone());
        let pool = pool.connect_lazy_with(options);
        let wakeup = Arc::new(Wakeup::default());
        let listener = connect_listener(&pool).await?;
        let stop = CancellationToken::new();
        let cursors = Arc::new(cursor::Cursors::default());
        tokio::spawn(listen(
            listener,
            pool.clone(),
            wakeup.clone(),
            cursors.clone(),
            stop.clone(),
        ));
        Ok(PgStore {
            inserter: group::Inserter::start(pool.clone()),
            cursors,
            clock,
            pool,
            heartbeats,
            wakeup,
            _listener: stop.drop_guard(),
        })
    }

    /// A connection of the pool. Taking one is where a pool runs out, so this is the one place
    /// that explains an exhausted pool ([`PgStore::pool_err`]); every other driver error
    /// converts with `?`.
    async fn conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>> {
        self.pool.acquire().await.map_err(|e| self.pool_err(e))
    }

    /// A second connection for work written in two halves at once, only if the pool has one
    /// idle: it never waits for one, nor opens one. `try_acquire` skips what the pool does
    /// before handing a connection out (its ping, its idle and lifetime limits, and the
    /// `before_acquire` hook that sets the store's clock): a connection the network dropped
    /// silently while it idled would hold its half until TCP gave up. So it is pinged here,
    /// within [`IDLE_CHECK`], and given the store's clock; one that fails either is closed.
    async fn idle_conn(&self) -> Option<PgPooled> {
        let mut conn = self.pool.try_acquire()?;
        let ready = async {
            conn.ping().await?;
            if let Some(clock) = &self.clock {
                set_clock(&mut conn, clock_setting(clock)).await?;
            }
            Ok::<(), sqlx::Error>(())
        };
        match tokio::time::timeout(IDLE_CHECK, ready).await {
            Ok(Ok(())) => Some(conn),
            _ => {
                conn.close_on_drop();
                None
            }
        }
    }

    /// The heartbeats' own connection (see [`PgStore::conn`]).
    async fn heartbeat_conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>> {
        self.heartbeats
            .acquire()
            .await
            .map_err(|e| self.pool_err(e))
    }

    /// A transaction on a connection of the pool (see [`PgStore::conn`]).
    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool.begin().await.map_err(|e| self.pool_err(e))
    }

    /// A driver error, with the cause spelt out when the pool had no free connection in time.
    fn pool_err(&self, e: sqlx::Error) -> Error {
        pool_err(&self.pool, e)
    }

    /// The connection pool, for callers that insert jobs inside their own transactions with
    /// [`job_insert_tx`].
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates a fresh, randomly named schema in the database `base_url` names and returns a
    /// URL that selects it (through `search_path`), so each test gets an empty database.
    pub async fn create_test_schema(base_url: &str) -> Result<String> {
        let options: PgConnectOptions = base_url.parse().map_err(|e| {
            Error::invalid("database url", format!("{}: {e}", redact_url(base_url)))
        })?;
        let schema = format!("porter_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = connect(&options, base_url).await?;
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let mut url =
            url::Url::parse(base_url).map_err(|e| Error::invalid("database url", e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("options", &format!("-c search_path={schema}"));
        Ok(url.to_string())
    }
}

/// The value of `porter.now` for a clock: its time, or empty for the database's own clock.
fn clock_setting(clock: &Clock) -> String {
    clock.fixed().map(|t| t.to_rfc3339()).unwrap_or_default()
}

async fn set_clock(conn: &mut PgConnection, at: String) -> std::result::Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config('porter.now', $1, false)")
        .bind(at)
        .execute(conn)
        .await
        .map(drop)
}

/// The URL parameters sqlx reads (sqlx-postgres `options/parse.rs`).
const DRIVER_PARAMETERS: [&str; 18] = [
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

/// The connection options a `postgres://` URL gives, or the error that it gives none (nothing
/// is opened). `warn`: log the query parameters it leaves out ([`driver_url`]).
///
/// Every connection turns `standard_conforming_strings` on, whatever the URL's `options`, the
/// role or the database say (set last, it wins): porter's migrations and statements are
/// written for it (a backslash in a string is a backslash), and with it off migration 0008's
/// function body did not even compile.
pub(crate) fn connect_options(url: &str, warn: bool) -> Result<PgConnectOptions> {
    let options: PgConnectOptions = driver_url(url, warn)
        .parse()
        .map_err(|e| Error::invalid("database url", format!("{}: {e}", redact_url(url))))?;
    // READ COMMITTED whatever the server's, the database's, the role's or the URL's default
    // (these options come last, and the last wins): porter's statements are written for a
    // snapshot per statement. Under REPEATABLE READ a limited claim's snapshot was taken by its
    // first statement, while it waited for the queue row's lock, and it counted the running
    // jobs as they were before the claim it waited for: two ran under a limit of one.
    Ok(options.options([
        ("standard_conforming_strings", "on"),
        ("default_transaction_isolation", "read\\ committed"),
    ]))
}

/// The URL without the query parameters sqlx does not read: sqlx would log each of them with
/// its value, and one may be a credential (`sslpassword`, which sqlx does not support). Each
/// is logged here by name only, when `warn`.
fn driver_url(url: &str, warn: bool) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        let key: String = url::form_urlencoded::parse(format!("{key}=").as_bytes())
            .next()
            .map(|(k, _)| k.into_owned())
            .unwrap_or_default();
        if DRIVER_PARAMETERS.contains(&key.as_str()) || key.starts_with("options[") {
            kept.push(pair);
        } else if warn {
            tracing::warn!(parameter = %key, "ignoring an unknown parameter of the database URL (value not shown)");
        }
    }
    if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

/// One connection, within [`CONNECT_TIMEOUT`]; errors name the server without the password.
async fn connect(options: &PgConnectOptions, url: &str) -> Result<PgConnection> {
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(options)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(Error::Unavailable(format!(
            "cannot connect to {}: {e}",
            redact_url(url)
        ))),
        Err(_) => Err(Error::Unavailable(format!(
            "cannot connect to {}: no answer within {CONNECT_TIMEOUT:?}",
            redact_url(url)
        ))),
    }
}

/// Refuses a database in an encoding other than UTF8, before anything is written: porter
/// checks names, keys and sizes in UTF-8 bytes, and so does porter_enqueue only where the
/// database counts them so (`octet_length` counts in the database's encoding: a key of 128
/// 'é' is 128 bytes in LATIN1 and 256 in UTF-8); and jsonb refuses in such a database what its
/// encoding cannot hold. SQL_ASCII (what a cluster made under the C locale gets) keeps the
/// bytes porter sends, UTF-8, and counts them as such: it is taken.
async fn refuse_other_encodings(conn: &mut PgConnection) -> Result<()> {
    let encoding: String = sqlx::query_scalar("SELECT getdatabaseencoding()")
        .fetch_one(&mut *conn)
        .await?;
    if encoding == "UTF8" || encoding == "SQL_ASCII" {
        return Ok(());
    }
    Err(Error::invalid(
        "database",
        format!("porter needs a database in UTF8; this one is in {encoding} (create one with ENCODING 'UTF8')"),
    ))
}

/// Refuses a search path whose first schema is the session's temporary one (`pg_temp` named
/// first): porter creates its tables in that schema, and they would be temporary tables, gone
/// with the connection (the first migrations ran there, and the seventh failed on a function
/// it could not find: review of 6 Dec).
async fn refuse_temporary_schema(conn: &mut PgConnection) -> Result<()> {
    let temporary: bool = sqlx::query_scalar(
        // By name in pg_namespace: a cast of the name to regnamespace reads it as an unquoted
        // identifier, and failed on a schema named with capitals, spaces or dots (own review).
        "SELECT coalesce((SELECT oid FROM pg_namespace WHERE nspname = current_schema()) = pg_my_temp_schema(), false)",
    )
    .fetch_one(&mut *conn)
    .await?;
    if !temporary {
        return Ok(());
    }
    Err(Error::invalid(
        "database",
        "the search path starts with pg_temp, the session's temporary schema, where porter's \
         tables would be temporary: name porter's schema first (for example \
         options=-c search_path=porter,pg_temp)",
    ))
}

/// Applies a set's pending migrations on a connection, recording each in
/// `porter_migrations`: one transaction per migration, under a transaction-level advisory lock
/// (per schema), so processes migrating the same database at once take turns and each finds
/// what the other applied. `_sqlx_migrations` is left to the application, except porter 0.1's
/// own rows there, deleted when such a database moves (see [`migrations`],
/// and [`super::migrate`] to run a set by URL). A database not in UTF8 is refused first, and a
/// search path that starts with the temporary schema.
pub async fn run_migrations(conn: &mut PgConnection, set: &MigrationSet) -> Result<()> {
    refuse_other_encodings(&mut *conn).await?;
    refuse_temporary_schema(&mut *conn).await?;
    // Without the lock first: an up-to-date database (every open but the first) needs none.
    let exists: bool = sqlx::query_scalar(sql!("migration_exists"))
        .fetch_one(&mut *conn)
        .await?;
    // A table from before 7 Dec has no checksums to list: the locked path adds the column.
    if exists {
        if let Ok(recorded) = migrations_recorded(&mut *conn, set).await {
            set.verify(&recorded, postgres_sql)?;
            if set.next(&versions(&recorded))?.is_none() {
                return Ok(());
            }
        }
    }
    let mut gave_way = 0usize;
    loop {
        let wait_ms =
            MIGRATION_LOCK_WAITS_MS[(gave_way / 5).min(MIGRATION_LOCK_WAITS_MS.len() - 1)];
        match migrate_one(&mut *conn, set, wait_ms).await? {
            Migrated::One => gave_way = 0,
            Migrated::UpToDate => return Ok(()),
            Migrated::GaveWay(migration) => {
                gave_way += 1;
                let pause = MIGRATION_PAUSES[(gave_way - 1).min(MIGRATION_PAUSES.len() - 1)];
                let holders = lock_holders(&mut *conn, wait_ms).await;
                tracing::warn!(
                    set = set.name,
                    version = migration.map_or(0, |m| m.version),
                    name = migration.map_or("porter_migrations.checksum", |m| m.name),
                    attempt = gave_way,
                    holders = %holders,
                    "a migration waited {wait_ms} ms for a lock on porter's tables and gave way, so that the queue's statements do not queue behind it; trying again in {} s. End the transactions held open (or wait for them)",
                    pause.as_secs()
                );
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// How long a migration's statements wait for a table's lock before they give way (SQLSTATE
/// 55P03): 0.2 s for the first five tries, then longer every five, so that the migration is
/// not starved by a steady run of long statements. A migration's `DROP TRIGGER` or `ALTER
/// TABLE` asks for an ACCESS EXCLUSIVE lock, and while it waits in PostgreSQL's lock queue
/// every later statement on the table waits behind it: until 7 Dec one transaction held open
/// (an idle-in-transaction session, a long report) stalled every worker's claims and
/// completions, the web and `jobs list` for as long as it stayed open, with no word from the
/// migrating process (review of 7 Dec). The first waits were 2 s, and processes starting
/// together took their tries in turn, so the queue stood still nearly all the time (review of
/// f016895).
const MIGRATION_LOCK_WAITS_MS: [i64; 6] = [200, 500, 1000, 2000, 5000, 10000];

/// The pauses between a migration's tries after it gave way, the last repeated.
const MIGRATION_PAUSES: [Duration; 4] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(10),
];

/// What [`migrate_one`] did.
enum Migrated {
    /// Applied one migration.
    One,
    /// Nothing was left to apply.
    UpToDate,
    /// Gave way on a lock ([`MIGRATION_LOCK_WAITS_MS`]), nothing applied: in this migration,
    /// or (`None`) in adding the bookkeeping's checksum column.
    GaveWay(Option<&'static migrations::Migration>),
}

/// The sessions whose transactions have been open longer than a migration waits, in words for
/// its warning; what could not be read is said so.
async fn lock_holders(conn: &mut PgConnection, wait_ms: i64) -> String {
    let rows: std::result::Result<Vec<(i64, String, i64, String)>, _> =
        sqlx::query_as(sql!("migration_lock_holders"))
            .bind(wait_ms)
            .fetch_all(&mut *conn)
            .await;
    match rows {
        Ok(rows) if rows.is_empty() => "no transaction open that long now".to_string(),
        Ok(rows) => rows
            .iter()
            .map(|(pid, state, open_ms, app)| {
                format!(
                    "pid {pid} ({state}, transaction open {} s, application {app:?})",
                    open_ms / 1000
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        Err(e) => format!("not read: {e}"),
    }
}

fn postgres_sql(m: &migrations::Migration) -> &'static str {
    m.postgres
}

/// The versions a set recorded in `porter_migrations`, each with its checksum.
async fn migrations_recorded(
    conn: &mut PgConnection,
    set: &MigrationSet,
) -> Result<Vec<(i64, Option<String>)>> {
    Ok(sqlx::query_as(sql!("migration_list"))
        .bind(set.name)
        .fetch_all(&mut *conn)
        .await?)
}

/// The versions of [`migrations_recorded`].
fn versions(recorded: &[(i64, Option<String>)]) -> Vec<i64> {
    recorded.iter().map(|(v, _)| *v).collect()
}

/// Applies the set's next migration, if any, in its own transaction. A failure, or a lock not
/// had within `wait_ms` ([`MIGRATION_LOCK_WAITS_MS`]), rolls the transaction (and the
/// advisory lock) back when it is dropped.
async fn migrate_one(
    conn: &mut PgConnection,
    set: &MigrationSet,
    wait_ms: i64,
) -> Result<Migrated> {
    let mut tx = conn.begin().await?;
    // Before the lock, as the transaction's first statement: a database or role whose
    // transactions default to REPEATABLE READ or SERIALIZABLE would otherwise take the snapshot
    // while waiting for the lock, and miss what the process before this one applied.
    (&mut *tx)
        .execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .await?;
    sqlx::query(sql!("migration_lock"))
        .execute(&mut *tx)
        .await?;
    // The server's notices ("already exists, skipping") say nothing to a user.
    (&mut *tx)
        .execute("SET LOCAL client_min_messages = warning")
        .await?;
    (&mut *tx).execute(sql!("migration_table_create")).await?;
    // Looked up first: the ALTER's exclusive lock, held to the commit, would keep every other
    // process's unlocked read of the table waiting for this whole migration.
    let has_checksums: bool = sqlx::query_scalar(sql!("migration_checksum_column"))
        .fetch_one(&mut *tx)
        .await?;
    if !has_checksums {
        // Under the same short lock wait as a migration (review of b48446f: behind a session
        // that read the table, a pg_dump, the ALTER waited without limit, and every other
        // process's start queued behind it).
        (&mut *tx)
            .execute(format!("SET LOCAL lock_timeout = {wait_ms}").as_str())
            .await?;
        let added = (&mut *tx)
            .execute("ALTER TABLE porter_migrations ADD COLUMN checksum TEXT")
            .await;
        if let Err(sqlx::Error::Database(db)) = &added {
            if db.code().as_deref() == Some("55P03") {
                return Ok(Migrated::GaveWay(None));
            }
        }
        added?;
        (&mut *tx).execute("SET LOCAL lock_timeout = 0").await?;
    }
    let mut recorded = migrations_recorded(&mut tx, set).await?;
    if set.name == migrations::CORE.name && recorded.is_empty() {
        adopt_porter_0_1(&mut tx).await?;
        recorded = migrations_recorded(&mut tx, set).await?;
    }
    set.verify(&recorded, postgres_sql)?;
    let Some(migration) = set.next(&versions(&recorded))? else {
        tx.commit().await?;
        return Ok(Migrated::UpToDate);
    };
    // After the advisory lock, which processes migrating at once wait for in turn.
    (&mut *tx)
        .execute(format!("SET LOCAL lock_timeout = {wait_ms}").as_str())
        .await?;
    // Executor::execute with a plain &str runs several statements (the simple protocol), as
    // sqlx::raw_sql would; raw_sql's future is not provably Send inside a spawned open.
    let applied = (&mut *tx).execute(migration.postgres).await;
    if let Err(sqlx::Error::Database(db)) = &applied {
        if db.code().as_deref() == Some("55P03") {
            return Ok(Migrated::GaveWay(Some(migration)));
        }
    }
    applied.map_err(|e| match map_err(e) {
        Error::Unavailable(m) => Error::Unavailable(m),
        other => Error::Migration(format!(
            "{} migration {} ({}): {other}",
            set.name, migration.version, migration.name
        )),
    })?;
    sqlx::query(sql!("migration_insert"))
        .bind(set.name)
        .bind(migration.version)
        .bind(migration.name)
        .bind(migrations::checksum(migration.postgres))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::debug!(set = set.name, version = migration.version, "migrated");
    Ok(Migrated::One)
}

/// A database of porter 0.1 (its tables there, nothing recorded in `porter_migrations`):
/// records the core versions its schema shows, and deletes porter 0.1's own rows from
/// `_sqlx_migrations` (the application's rows there stay).
async fn adopt_porter_0_1(tx: &mut PgConnection) -> Result<()> {
    let (core_tables, now_fn, lease): (i64, bool, bool) =
        sqlx::query_as(sql!("migration_porter_0_1_schema"))
            .fetch_one(&mut *tx)
            .await?;
    let versions = migrations::porter_0_1_versions(core_tables, now_fn, lease)?;
    if versions.is_empty() {
        return Ok(());
    }
    for migration in &migrations::CORE.migrations[..versions.len()] {
        // Adopted, not applied from this binary's SQL: no checksum.
        sqlx::query(sql!("migration_insert"))
            .bind(migrations::CORE.name)
            .bind(migration.version)
            .bind(migration.name)
            .bind(None::<String>)
            .execute(&mut *tx)
            .await?;
    }
    let sqlx_table: bool = sqlx::query_scalar(sql!("migration_sqlx_exists"))
        .fetch_one(&mut *tx)
        .await?;
    if sqlx_table {
        sqlx::query(sql!("migration_porter_0_1_sqlx_rows_delete"))
            .execute(&mut *tx)
            .await?;
    }
    tracing::info!(
        versions = ?versions,
        "recorded porter's versions in porter_migrations (porter's own rows left _sqlx_migrations, the application's stay)"
    );
    Ok(())
}

/// Applies a set's pending migrations to the database a `postgres://` URL names, on a
/// connection of its own.
pub(crate) async fn run_migrations_at(url: &str, set: &MigrationSet) -> Result<()> {
    let options = connect_options(url, true)?;
    let mut conn = connect(&options, url).await?;
    let result = run_migrations(&mut conn, set).await;
    // Closing is a courtesy; the migrations' outcome is what counts.
    let _ = conn.close().await;
    result
}

/// A listener on a connection of its own, listening on porter's channels.
async fn connect_listener(pool: &PgPool) -> Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener
        .listen_all([NOTIFY_CHANNEL, CANCEL_CHANNEL, CONTROL_CHANNEL])
        .await?;
    Ok(listener)
}

/// Wakes this process's producers for every insert any process announces, and its workers'
/// cancel watchers for every cancel request of a running job. Such a wake-up may be for jobs
/// behind the queue's claim cursor (see [`cursor`]): it rewinds it.
async fn listen(
    mut listener: PgListener,
    pool: PgPool,
    wakeup: Arc<Wakeup>,
    cursors: Arc<cursor::Cursors>,
    stop: CancellationToken,
) {
    loop {
        let received = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.try_recv() => r,
        };
        match received {
            Ok(Some(n)) if n.channel() == CANCEL_CHANNEL => wakeup.notify_cancel(n.payload()),
            Ok(Some(n)) if n.channel() == CONTROL_CHANNEL => wakeup.notify_control(n.payload()),
            Ok(Some(n)) => {
                cursors.rewind(n.payload());
                wakeup.notify(n.payload());
            }
            // The connection was lost and is back: what was sent meanwhile is gone.
            Ok(None) => {
                cursors.rewind_all();
                wakeup.notify_cancel(super::wake::ALL_QUEUES);
                wakeup.notify_control(super::wake::ALL_QUEUES);
            }
            Err(e) => {
                tracing::warn!(error = %map_err(e), "LISTEN {NOTIFY_CHANNEL} failed; retrying");
                // Listening again before the wake-up: woken first, producers would look while
                // nothing listened yet, and a NOTIFY sent in between would be lost until the
                // poll. A new listener, on a new connection: sqlx keeps the old connection
                // after some errors (a connection reset by the peer), and a statement on the
                // old listener then failed on that dead connection every second, for good
                // (review of 6 Dec: wake-ups, cancels and pauses of other processes were
                // heard only by polls from then on).
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(LISTEN_RETRY) => {}
                    }
                    let listening = tokio::select! {
                        _ = stop.cancelled() => return,
                        r = connect_listener(&pool) => r,
                    };
                    match listening {
                        Ok(fresh) => {
                            listener = fresh;
                            break;
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "LISTEN {NOTIFY_CHANNEL} still failing")
                        }
                    }
                }
                tracing::info!("LISTEN {NOTIFY_CHANNEL} works again");
                cursors.rewind_all();
                // As after a quick reconnect: cancel requests sent meanwhile are lost too.
                wakeup.notify_cancel(super::wake::ALL_QUEUES);
                wakeup.notify_control(super::wake::ALL_QUEUES);
            }
        }
    }
}

// ---- row mapping --------------------------------------------------------------------------

fn decode_err(e: impl std::error::Error + Send + Sync + 'static) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(e))
}

fn job_from_row(r: PgRow) -> sqlx::Result<JobRow> {
    // What another program wrote and porter cannot read (see JobRow::unreadable): jsonb
    // holds numbers past an f64 and nesting deeper than porter's parser goes.
    let mut unreadable = Vec::new();
    let mut json = |column: &str| -> sqlx::Result<serde_json::Value> {
        match r.try_get::<serde_json::Value, _>(column) {
            Ok(v) => Ok(v),
            Err(sqlx::Error::ColumnDecode { source, .. }) => {
                unreadable.push(format!("{column}: {source}"));
                Ok(serde_json::Value::Null)
            }
            Err(e) => Err(e),
        }
    };
    let (args, metadata) = (json("args")?, json("metadata")?);
    Ok(JobRow {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        queue: r.try_get("queue")?,
        args,
        state: r
            .try_get::<&str, _>("state")?
            .parse::<JobState>()
            .map_err(decode_err)?,
        priority: r.try_get("priority")?,
        attempt: r.try_get("attempt")?,
        max_attempts: r.try_get("max_attempts")?,
        errors: match r.try_get::<Json<Vec<AttemptError>>, _>("errors") {
            Ok(errors) => errors.0,
            // Not as porter writes it (see crate::store::errors_read): read without failing.
            Err(sqlx::Error::ColumnDecode { .. }) => crate::store::errors_read(
                r.try_get::<Json<serde_json::Value>, _>("errors")
                    .map(|v| v.0)
                    .map_err(|e| e.to_string()),
                r.try_get("created_at")?,
            ),
            Err(e) => return Err(e),
        },
        created_at: r.try_get("created_at")?,
        scheduled_at: r.try_get("scheduled_at")?,
        attempted_at: r.try_get("attempted_at")?,
        finalized_at: r.try_get("finalized_at")?,
        attempted_by: r.try_get("attempted_by")?,
        unique_key: r.try_get("unique_key")?,
        metadata,
        output: None,
        progress: None,
        concurrency_key: r.try_get("concurrency_key")?,
        sequence_key: r.try_get("sequence_key")?,
        unreadable: (!unreadable.is_empty()).then(|| unreadable.join("; ")),
    })
}

/// A queue row of `queue_list.sql` / `queue_limit_set.sql`: name, paused_at, then the limits.
fn queue_from_row(r: &PgRow) -> sqlx::Result<QueueRow> {
    Ok(QueueRow {
        name: r.try_get(0)?,
        paused_at: r.try_get(1)?,
        limits: limits_from_row(r, 2)?,
    })
}

/// The six limit columns from `at` on: concurrency, per key, rate and its period (ms), per-key
/// rate and its period.
fn limits_from_row(r: &PgRow, at: usize) -> sqlx::Result<QueueLimits> {
    let count = |i: usize| -> sqlx::Result<Option<u32>> {
        Ok(r.try_get::<Option<i32>, _>(i)?.map(|n| n.max(0) as u32))
    };
    let rate = |i: usize| -> sqlx::Result<Option<Rate>> {
        Ok(match (count(i)?, r.try_get::<Option<i64>, _>(i + 1)?) {
            (Some(limit), Some(ms)) => Some(Rate {
                limit,
                period_ms: ms.max(1) as u64,
            }),
            _ => None,
        })
    };
    Ok(QueueLimits {
        concurrency: count(at)?,
        per_key: count(at + 1)?,
        rate: rate(at + 2)?,
        rate_per_key: rate(at + 4)?,
    })
}

/// A rate as its two columns: the limit and the period in milliseconds.
fn rate_columns(rate: Option<Rate>) -> (Option<i32>, Option<i64>) {
    match rate {
        Some(r) => (
            Some(r.limit as i32),
            Some(r.period_ms.min(i64::MAX as u64) as i64),
        ),
        None => (None, None),
    }
}

/// A duration as the seconds the SQL multiplies by `interval '1 second'`, clamped to
/// [`MAX_DURATION`] (a larger interval would be out of range).
/// Whether live workers serve each queue and kind, asked on a caller's connection after a
/// `_tx` insert, each in a savepoint of its own: a failed check (counted as served, logged at
/// debug) rolls back to it and leaves the caller's transaction usable.
async fn served_on(conn: &mut PgConnection, needed: &[((String, String), u64)]) -> Vec<bool> {
    let mut served = Vec::with_capacity(needed.len());
    for ((queue, kind), _) in needed {
        let count: Result<i64> = async {
            let mut sp = Savepoint::open(conn).await?;
            let n = sqlx::query_scalar(sql!("worker_count_serving"))
                .bind(secs(DEFAULT_LEASE))
                .bind(queue)
                .bind(kind)
                .fetch_one(sp.conn())
                .await
                .map_err(Error::from);
            sp.end(n).await
        }
        .await;
        served.push(match count {
            Ok(n) => n > 0,
            Err(e) => {
                tracing::debug!(error = %e, queue, kind, "could not ask whether a live worker serves the jobs");
                true
            }
        });
    }
    served
}

fn secs(d: Duration) -> f64 {
    clamp_secs(d)
}

async fn one_job(conn: &mut PgConnection, id: i64) -> Result<Option<JobRow>> {
    Ok(sqlx::query(sql!("job_get"))
        .bind(id)
        .try_map(job_from_row)
        .fetch_optional(conn)
        .await?)
}

// ---- writes shared with callers' own transactions -------------------------------------------

/// Wakes the producers of these queues in every process, at commit (see `queue_notify.sql`).
async fn notify_queues(conn: &mut PgConnection, mut queues: Vec<String>) -> Result<()> {
    queues.sort();
    queues.dedup();
    sqlx::query(sql!("queue_notify"))
        .bind(queues)
        .execute(conn)
        .await?;
    Ok(())
}

/// Announces, at the commit, that a queue was paused or given other limits
/// ([`CONTROL_CHANNEL`]).
async fn notify_control(conn: &mut PgConnection, queue: &str) -> Result<()> {
    sqlx::query(sql!("queue_control_notify"))
        .bind(queue)
        .execute(conn)
        .await?;
    Ok(())
}

/// The parents job_parents_mark.sql locked: id, state, queue, and whether a claim would take
/// it now (available, or due to be promoted).
type MarkedParent = (i64, String, String, bool);

/// Marks and locks the parents `ids` of jobs being inserted, with the sequences `keys`
/// (job_parents_mark.sql), and wakes the queues of those a claim would take now
/// ([`wake_parents`]). Inside a [`RetryPoint`] of the insert's.
async fn mark_parents(
    conn: &mut PgConnection,
    ids: &[i64],
    keys: &[String],
) -> Result<Vec<MarkedParent>> {
    let rows = lock_parents(conn, true, ids, keys).await?;
    wake_parents(conn, &rows).await?;
    Ok(rows)
}

/// Locks the parents `ids` of jobs being inserted and the sequences `keys`: marking them
/// (`mark`, job_parents_mark.sql, answering their rows) or only locking them
/// (job_parents_lock.sql, answering none), in id order. An insert holds them until its
/// transaction ends, and may wait meanwhile for a completion that asks for them: see
/// [`RetryPoint`].
async fn lock_parents(
    conn: &mut PgConnection,
    mark: bool,
    ids: &[i64],
    keys: &[String],
) -> Result<Vec<MarkedParent>> {
    if mark {
        return Ok(sqlx::query_as(sql!("job_parents_mark"))
            .bind(ids)
            .bind(keys)
            .fetch_all(&mut *conn)
            .await?);
    }
    sqlx::query(sql!("job_parents_lock"))
        .bind(ids)
        .bind(keys)
        .execute(&mut *conn)
        .await?;
    Ok(Vec::new())
}

/// A savepoint an insert of jobs with parents, in a caller's transaction, is written again
/// from once when PostgreSQL ends it to break a deadlock, so that the caller's transaction
/// survives it. The insert locks its parents first ([`lock_parents`]) and holds them to the
/// end; a completion of those parents can wait for them while the insert waits for that
/// completion: for one of its rows locked in another order (a completion locks its batch in
/// its plan's order, which on a small table is the rows' order on disk), or for a job it is
/// ending whose unique key the insert takes. Rolled back to, the savepoint lets go of every
/// lock the try took, and the completion goes on (or, the victim itself, writes itself again:
/// [`complete_releasing`]). Until 7 Dec the insert failed with `deadlock detected`; the
/// parents' locking alone was written again later that day, and an insert waiting for a
/// unique key still failed.
///
/// Once only: locks the caller's transaction took before (an earlier insert's parents) stay,
/// and if they close the cycle every try meets it again, holding the completion back a
/// `deadlock_timeout` each time. An insert in a transaction of porter's own is written again
/// whole instead ([`again_if_deadlocked`], [`insert_jobs_own`]): rows written from a savepoint
/// carry its subtransaction's id, which a bulk action's fence does not know
/// ([`crate::store::admin::BulkFence::in_progress`]).
pub(super) struct RetryPoint {
    tries: u32,
}

/// How long a try waits, times the tries so far, before it is written again after a deadlock.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Tries of a [`RetryPoint`]: the first and one more.
const RETRY_POINT_TRIES: u32 = 2;

impl RetryPoint {
    pub(super) async fn open(conn: &mut PgConnection) -> Result<RetryPoint> {
        sqlx::query("SAVEPOINT porter_retry")
            .execute(&mut *conn)
            .await?;
        Ok(RetryPoint { tries: 1 })
    }

    /// A try's outcome: its value, the savepoint released; `None` when it is to be written
    /// again (rolled back to the savepoint, which stays for the next try); or its error.
    pub(super) async fn settle<T>(
        &mut self,
        conn: &mut PgConnection,
        what: &str,
        out: Result<T>,
    ) -> Result<Option<T>> {
        match out {
            Err(e) if self.tries < RETRY_POINT_TRIES && deadlocked(&e) => {
                tracing::debug!(error = %e, "{what} failed; writing it again from its savepoint");
                self.tries += 1;
                sqlx::query("ROLLBACK TO SAVEPOINT porter_retry")
                    .execute(&mut *conn)
                    .await?;
                // As again_while's pause: the other side goes first.
                tokio::time::sleep(RETRY_PAUSE).await;
                Ok(None)
            }
            Err(e) => Err(e),
            Ok(v) => {
                sqlx::query("RELEASE SAVEPOINT porter_retry")
                    .execute(&mut *conn)
                    .await?;
                Ok(Some(v))
            }
        }
    }
}

/// Wakes, at the commit, the queues of the parents job_parents_mark.sql locked that a claim
/// would take now: a producer's claim (and its promotion of due jobs) meanwhile passed over
/// them (SKIP LOCKED) and found nothing, and the commit's other wake-ups are for the
/// children's queues. Without this, such a parent waited for its queue's next poll or insert.
async fn wake_parents(conn: &mut PgConnection, rows: &[MarkedParent]) -> Result<()> {
    let queues: Vec<String> = rows
        .iter()
        .filter(|(_, _, _, claimable)| *claimable)
        .map(|(_, _, queue, _)| queue.clone())
        .collect();
    if queues.is_empty() {
        return Ok(());
    }
    notify_queues(conn, queues).await
}

/// Binds the parameters of `job_filter.sql` ($1..$6).
fn bind_filter<'q>(
    q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    p: &JobSearchParams,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let states: Vec<String> = p
        .filter
        .states
        .iter()
        .map(|s| s.as_str().to_string())
        .collect();
    q.bind(states)
        .bind(p.filter.kind.clone())
        .bind(p.filter.queue.clone())
        .bind(p.filter.args_contains.clone())
        .bind(p.before_id)
        .bind(p.max_id)
}

/// States as the text array the statements read (empty: any state).
fn state_names(states: &[JobState]) -> Vec<String> {
    states.iter().map(|s| s.as_str().to_string()).collect()
}

/// [`bind_filter`] for a query read into tuples.
fn bind_filter_as<'q, O>(
    q: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    p: &JobSearchParams,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    q.bind(state_names(&p.filter.states))
        .bind(p.filter.kind.clone())
        .bind(p.filter.queue.clone())
        .bind(p.filter.args_contains.clone())
        .bind(p.before_id)
        .bind(p.max_id)
}

/// The rows of a bulk write (`id, queue, state, attempted_by`).
/// Running jobs among `changes` were only asked to stop: tells their workers, wherever they
/// run, at commit (each worker once).
async fn notify_cancel_requests(conn: &mut PgConnection, changes: &[JobChange]) -> Result<()> {
    let workers: std::collections::BTreeSet<&str> = changes
        .iter()
        .filter(|c| c.state == JobState::Running)
        .filter_map(|c| c.attempted_by.as_deref())
        .collect();
    for worker in workers {
        sqlx::query(sql!("job_cancel_notify"))
            .bind(worker)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

fn job_changes(rows: Vec<(i64, String, String, Option<String>)>) -> Result<Vec<JobChange>> {
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

/// One column of a batch, for binding as an array.
fn column<T>(jobs: &[&JobInsertParams], f: impl Fn(&JobInsertParams) -> T) -> Vec<T> {
    jobs.iter().map(|j| f(j)).collect()
}

/// One column of a batch's holds, as [`column`] is of its jobs.
fn held<'a, T>(holds: &[&'a JobHold], f: impl Fn(&'a JobHold) -> T) -> Vec<T> {
    holds.iter().map(|h| f(h)).collect()
}

/// Inserts one batch, in statements of at most [`INSERT_CHUNK_BYTES`] of args and metadata
/// each (on the caller's connection, so in its transaction); returns each job's row, in input
/// order, or `None` for a job not inserted because its unique key was held.
async fn insert_batch(
    conn: &mut PgConnection,
    jobs: &[&JobInsertParams],
    holds: &[&JobHold],
) -> Result<Vec<Option<JobRow>>> {
    let mut rows = Vec::with_capacity(jobs.len());
    let mut start = 0;
    while start < jobs.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < jobs.len() {
            let size = json_size(&jobs[end].args, INSERT_CHUNK_BYTES)
                + json_size(&jobs[end].metadata, INSERT_CHUNK_BYTES);
            if end > start && bytes + size > INSERT_CHUNK_BYTES {
                break;
            }
            bytes += size;
            end += 1;
        }
        rows.extend(insert_statement(conn, &jobs[start..end], &holds[start..end]).await?);
        start = end;
    }
    Ok(rows)
}

/// One insert statement over arrays: `job_insert_uniform.sql` when every job is plain (see
/// [`plain_insert`]) and of one kind, queue, priority, attempts and metadata ([`uniform`]),
/// `job_insert_plain.sql` when every job is plain, `job_insert_waiting_uniform.sql` or
/// `job_insert_waiting.sql` when every job is plain but for its dependencies or workflow (see
/// [`waiting_insert`]), `job_insert.sql` otherwise.
async fn insert_statement(
    conn: &mut PgConnection,
    jobs: &[&JobInsertParams],
    holds: &[&JobHold],
) -> Result<Vec<Option<JobRow>>> {
    if plain_insert(jobs, holds) {
        let query = if uniform(jobs) {
            bind_uniform_columns(sqlx::query_as(sql!("job_insert_uniform")), jobs)
        } else {
            bind_job_columns(sqlx::query_as(sql!("job_insert_plain")), jobs)
        };
        let (ids, at): (Vec<i64>, DateTime<Utc>) = query.fetch_one(&mut *conn).await?;
        return match_inserted(jobs, holds, started_now(ids, at, |_| JobState::Available));
    }
    if waiting_insert(jobs, holds) {
        let query = if uniform(jobs) {
            bind_uniform_columns(sqlx::query_as(sql!("job_insert_waiting_uniform")), jobs)
        } else {
            bind_job_columns(sqlx::query_as(sql!("job_insert_waiting")), jobs)
        };
        let (ids, at): (Vec<i64>, DateTime<Utc>) = query
            .bind(held(holds, |h| h.waiting_for))
            .bind(held(holds, |h| h.has_dependents))
            .bind(held(holds, |h| h.workflow.as_ref().map(|w| w.0)))
            .bind(held(holds, |h| h.workflow.as_ref().map(|w| w.1.as_str())))
            .fetch_one(&mut *conn)
            .await?;
        let state = |i: usize| holds[i].state.unwrap_or(JobState::Available);
        return match_inserted(jobs, holds, started_now(ids, at, state));
    }
    let rows = bind_insert(sqlx::query(sql!("job_insert")), jobs, holds)
        .try_map(inserted_from_row)
        .fetch_all(&mut *conn)
        .await?;
    match_inserted(jobs, holds, rows)
}

/// Whether every job of a batch has the first's kind, queue, priority, attempts and metadata,
/// which the uniform statements (`job_insert_uniform.sql`, `job_insert_waiting_uniform.sql`)
/// then take once.
fn uniform(jobs: &[&JobInsertParams]) -> bool {
    let first = jobs[0];
    jobs.iter().all(|j| {
        j.kind == first.kind
            && j.queue == first.queue
            && j.priority == first.priority
            && j.max_attempts == first.max_attempts
            && j.metadata == first.metadata
    })
}

/// Binds what the uniform statements take first ($1-$6): the first job's kind and queue, every
/// job's args (an array), and the first's priority, attempts and metadata.
fn bind_uniform_columns<'q, O>(
    q: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    jobs: &[&'q JobInsertParams],
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    let first = jobs[0];
    q.bind(first.kind.as_str())
        .bind(first.queue.as_str())
        .bind(jobs.iter().map(|j| Json(&j.args)).collect::<Vec<_>>())
        .bind(first.priority)
        .bind(first.max_attempts)
        .bind(Json(&first.metadata))
}

/// Binds what `job_insert_plain.sql` and `job_insert_waiting.sql` take first, an array each
/// ($1-$6): the jobs' kinds, queues, args, priorities, attempts and metadata.
fn bind_job_columns<'q, O>(
    q: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    jobs: &[&'q JobInsertParams],
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    q.bind(jobs.iter().map(|j| j.kind.as_str()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.queue.as_str()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| Json(&j.args)).collect::<Vec<_>>())
        .bind(column(jobs, |j| j.priority))
        .bind(column(jobs, |j| j.max_attempts))
        .bind(jobs.iter().map(|j| Json(&j.metadata)).collect::<Vec<_>>())
}

/// Whether a job is due at its insert and has no unique, concurrency or sequence key: what the
/// statements narrower than `job_insert.sql` ask of every job they write.
fn due_now_without_keys(j: &JobInsertParams) -> bool {
    j.scheduled_at.is_none()
        && j.schedule_in.is_none()
        && j.unique_key.is_none()
        && j.concurrency_key.is_none()
        && j.sequence_key.is_none()
}

/// Whether every job of a batch starts available now, with nothing but what
/// `job_insert_plain.sql` sends: no due time, no unique, concurrency or sequence key, no
/// parents, outside any workflow (the bulk of a large insert, which that statement writes with
/// six arrays instead of seventeen).
fn plain_insert(jobs: &[&JobInsertParams], holds: &[&JobHold]) -> bool {
    !jobs.is_empty()
        && jobs.iter().all(|j| due_now_without_keys(j))
        && holds.iter().all(|h| {
            h.state.is_none() && h.waiting_for == 0 && !h.has_dependents && h.workflow.is_none()
        })
}

/// Whether every job of a batch is plain (see [`plain_insert`]) but for waiting for parents,
/// being waited for or being a workflow's step, and so starts pending when it waits and
/// available otherwise, as `job_insert_waiting.sql` starts it: no job starts cancelled (its
/// error and end are written by `job_insert.sql`).
fn waiting_insert(jobs: &[&JobInsertParams], holds: &[&JobHold]) -> bool {
    !jobs.is_empty()
        && jobs.iter().all(|j| due_now_without_keys(j))
        && holds.iter().all(|h| {
            h.error.is_none()
                && match h.state {
                    None => h.waiting_for == 0,
                    Some(JobState::Pending) => h.waiting_for > 0,
                    Some(_) => false,
                }
        })
}

/// The rows of jobs an insert started now, one clock reading for all (`job_insert_plain.sql`
/// and the statements that answer as it does), the `i`th of `ids` in state `state(i)`.
fn started_now(
    ids: Vec<i64>,
    at: DateTime<Utc>,
    state: impl Fn(usize) -> JobState,
) -> Vec<Inserted> {
    ids.into_iter()
        .enumerate()
        .map(|(i, id)| Inserted {
            id,
            unique_key: None,
            at: InsertedAt {
                state: state(i),
                errors: Vec::new(),
                created_at: at,
                scheduled_at: at,
                finalized_at: None,
            },
        })
        .collect()
}

/// What the database decides for a job it inserts (the RETURNING of `job_insert.sql`, or what
/// `job_insert_plain.sql` returns for all); the rest of its row is what the insert sent (as on
/// SQLite). Reading every column back, args and metadata parsed again, cost more than the
/// insert's own statement. So args and metadata are answered as sent: jsonb keeps numbers as
/// decimals, and a whole-number float of 1e16 or more (which serde_json writes with an
/// exponent) reads back later as the same number written as an integer.
struct Inserted {
    id: i64,
    unique_key: Option<String>,
    at: InsertedAt,
}

fn inserted_from_row(r: PgRow) -> sqlx::Result<Inserted> {
    Ok(Inserted {
        id: r.try_get(0)?,
        unique_key: r.try_get(4)?,
        at: InsertedAt {
            state: r
                .try_get::<&str, _>(1)?
                .parse::<JobState>()
                .map_err(decode_err)?,
            created_at: r.try_get(2)?,
            scheduled_at: r.try_get(3)?,
            errors: r.try_get::<Json<Vec<AttemptError>>, _>(5)?.0,
            finalized_at: r.try_get(6)?,
        },
    })
}

/// Each job's row from the rows an insert statement returned: those come back for the jobs
/// inserted, in id (= input) order once sorted, minus the jobs whose unique key was held (by an
/// earlier job or by an earlier row of the statement). A job starting cancelled is never held
/// (the key's index leaves cancelled rows out), so a held job's key on a cancelled row that
/// follows it is not its row. As on SQLite.
fn match_inserted(
    jobs: &[&JobInsertParams],
    holds: &[&JobHold],
    mut rows: Vec<Inserted>,
) -> Result<Vec<Option<JobRow>>> {
    rows.sort_unstable_by_key(|r| r.id);
    let mut rows = rows.into_iter().peekable();
    let out: Vec<Option<JobRow>> = jobs
        .iter()
        .zip(holds)
        .map(|(job, hold)| {
            let cancelled = hold.state == Some(JobState::Cancelled);
            rows.next_if(|r| {
                r.unique_key == job.unique_key && (r.at.state == JobState::Cancelled) == cancelled
            })
            .map(|r| job.inserted_row(r.id, r.at))
        })
        .collect();
    if rows.next().is_some() {
        return Err(Error::Database(
            "the insert returned rows for jobs it was not given".into(),
        ));
    }
    Ok(out)
}

/// `job_insert.sql` as the first part of one statement that also wakes the queues' producers
/// (see `job_insert_announced.sql`).
const JOB_INSERT_ANNOUNCED: &str = concat!(
    "WITH inserted AS (\n",
    include_str!("sql/job_insert.sql"),
    "),\n",
    include_str!("sql/job_insert_announced.sql")
);

/// Whether these jobs go in one insert statement (at most [`INSERT_CHUNK_BYTES`] of args and
/// metadata, or a single job).
pub(super) fn fits_one_statement(jobs: &[JobInsertParams]) -> bool {
    let mut bytes = 0;
    jobs.len() <= 1
        || jobs.iter().all(|j| {
            bytes +=
                json_size(&j.args, INSERT_CHUNK_BYTES) + json_size(&j.metadata, INSERT_CHUNK_BYTES);
            bytes <= INSERT_CHUNK_BYTES
        })
}

/// Inserts jobs that wait for nothing and hold no unique key, and wakes their queues'
/// producers in every process, in ONE statement sent outside any transaction (so it is its own
/// transaction): one round trip and one commit, where BEGIN, INSERT, NOTIFY and COMMIT took
/// four (issue 14's latency). The jobs must fit one statement ([`fits_one_statement`]).
///
/// The sqlx error is returned as it came, for the caller to tell a statement the database
/// refused (rolled back: nothing was written) from a connection lost on the way (whether it
/// committed is unknown).
pub(super) async fn insert_announced(
    conn: &mut PgConnection,
    jobs: &[JobInsertParams],
) -> sqlx::Result<Vec<InsertResult>> {
    let jobs: Vec<&JobInsertParams> = jobs.iter().collect();
    let holds = vec![JobHold::default(); jobs.len()];
    let holds: Vec<&JobHold> = holds.iter().collect();
    let mut queues: Vec<String> = jobs.iter().map(|j| j.queue.clone()).collect();
    queues.sort();
    queues.dedup();
    let rows = bind_insert(sqlx::query(JOB_INSERT_ANNOUNCED), &jobs, &holds)
        .bind(queues)
        .try_map(inserted_from_row)
        .fetch_all(conn)
        .await?;
    // Ids ascend in input order (job_insert.sql).
    let rows =
        match_inserted(&jobs, &holds, rows).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    rows.into_iter()
        .map(|job| match job {
            Some(job) => Ok(InsertResult {
                job,
                inserted: true,
            }),
            None => Err(sqlx::Error::Protocol(
                "the insert returned fewer rows than it was given".into(),
            )),
        })
        .collect()
}

/// Binds the parameters of `job_insert.sql` ($1..$17).
fn bind_insert<'q>(
    q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    jobs: &[&JobInsertParams],
    holds: &[&'q JobHold],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    q.bind(column(jobs, |j| j.kind.clone()))
        .bind(column(jobs, |j| j.queue.clone()))
        .bind(column(jobs, |j| j.args.clone()))
        .bind(column(jobs, |j| j.priority))
        .bind(column(jobs, |j| j.max_attempts))
        .bind(column(jobs, |j| j.scheduled_at))
        .bind(column(jobs, |j| j.schedule_in.map_or(0.0, secs)))
        .bind(column(jobs, |j| j.unique_key.clone()))
        .bind(column(jobs, |j| j.metadata.clone()))
        .bind(column(jobs, |j| j.concurrency_key.clone()))
        .bind(column(jobs, |j| j.sequence_key.clone()))
        .bind(held(holds, |h| h.waiting_for))
        .bind(held(holds, |h| h.state.map(|s| s.as_str())))
        .bind(held(holds, |h| h.error.as_deref()))
        .bind(held(holds, |h| h.has_dependents))
        .bind(held(holds, |h| h.workflow.as_ref().map(|w| w.0)))
        .bind(held(holds, |h| h.workflow.as_ref().map(|w| w.1.as_str())))
}

/// Inserts jobs on a caller's connection, inside whatever transaction it has open: the jobs
/// exist if and only if that transaction commits, and the NOTIFY that wakes producers is
/// delivered at that commit. Results are in input order; a job whose unique key an unfinished
/// job holds is not inserted, and that job is returned with `inserted = false`.
///
/// Producers in this process are woken by the NOTIFY too (this function cannot know when the
/// caller commits).
///
/// Each job is checked first ([`JobInsertParams::check`]): nothing is written when it fails.
/// The insert runs in a savepoint of the caller's transaction (a transaction of its own on a
/// connection without one): a refusal found while writing (a parent that does not exist, a
/// parent's row marked before the missing one was found) leaves nothing of it, and the
/// locks its statements take hold until the end of a transaction. Until 6 Dec the parents'
/// marks stayed in the caller's transaction, and without one each statement committed alone.
/// The caller's transaction may be a sqlx `Transaction` or one it began with a plain `BEGIN`
/// (porter then names its own savepoint). A future dropped before it finished leaves, in the
/// second case, its savepoint open and its rows in the transaction: roll that one back.
pub async fn job_insert_tx(
    conn: &mut PgConnection,
    jobs: Vec<JobInsertParams>,
) -> Result<Vec<InsertResult>> {
    for job in &jobs {
        job.check()?;
    }
    let mut sp = Savepoint::open(conn).await?;
    let out = insert_jobs_tx(sp.conn(), jobs).await;
    sp.end(out).await
}

/// A savepoint on a caller's connection, whatever began its transaction: sqlx's own (a
/// `SAVEPOINT` inside a sqlx transaction, or a transaction of its own on a connection outside
/// any), or a named one inside a transaction begun with a plain `BEGIN`, which sqlx does not
/// count: through sqlx that one got `BEGIN` (a warning) and then `COMMIT`, which committed
/// the caller's transaction under it, or `ROLLBACK`, which threw away what it had written.
pub(crate) enum Savepoint<'c> {
    Sqlx(sqlx::Transaction<'c, sqlx::Postgres>),
    Named(&'c mut PgConnection),
}

impl<'c> Savepoint<'c> {
    pub(crate) async fn open(conn: &'c mut PgConnection) -> Result<Savepoint<'c>> {
        if !sqlx::Connection::is_in_transaction(conn) {
            // The first statement of a transaction starts when it does: outside a transaction
            // block each statement is the first of its own. Over the simple protocol, one
            // message: over the extended one the Bind begins the implicit transaction and the
            // Execute, later, the statement, and the two differ outside a block too.
            // (A query given as a bare string, without arguments, goes as one Query.)
            let in_block: bool = sqlx::Executor::fetch_one(
                &mut *conn,
                "SELECT statement_timestamp() <> transaction_timestamp()",
            )
            .await?
            .try_get(0)?;
            if in_block {
                sqlx::query("SAVEPOINT porter_tx")
                    .execute(&mut *conn)
                    .await?;
                return Ok(Savepoint::Named(conn));
            }
        }
        Ok(Savepoint::Sqlx(conn.begin().await?))
    }

    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        match self {
            Savepoint::Sqlx(tx) => tx,
            Savepoint::Named(conn) => conn,
        }
    }

    /// Keeps what was done in it when `result` is `Ok`, else undoes it; answers `result`.
    pub(crate) async fn end<T>(self, result: Result<T>) -> Result<T> {
        match (self, result) {
            (Savepoint::Sqlx(tx), Ok(v)) => {
                tx.commit().await?;
                Ok(v)
            }
            (Savepoint::Sqlx(tx), Err(e)) => {
                let _ = tx.rollback().await;
                Err(e)
            }
            (Savepoint::Named(conn), Ok(v)) => {
                sqlx::query("RELEASE SAVEPOINT porter_tx")
                    .execute(&mut *conn)
                    .await?;
                Ok(v)
            }
            (Savepoint::Named(conn), Err(e)) => {
                for undo in [
                    "ROLLBACK TO SAVEPOINT porter_tx",
                    "RELEASE SAVEPOINT porter_tx",
                ] {
                    if sqlx::query(undo).execute(&mut *conn).await.is_err() {
                        break;
                    }
                }
                Err(e)
            }
        }
    }
}

/// [`job_insert_tx`] for params checked already, or made by porter itself from checked ones
/// (a batch's callback with its `batch_id`, a workflow's steps with their parents' ids), in a
/// transaction that is not porter's own to write again: jobs with parents are written from a
/// [`RetryPoint`].
pub(crate) async fn insert_jobs_tx(
    conn: &mut PgConnection,
    jobs: Vec<JobInsertParams>,
) -> Result<Vec<InsertResult>> {
    if jobs.iter().all(|j| j.depends_on.is_empty()) {
        return insert_jobs_once(conn, &jobs).await;
    }
    Ok(from_retry_point!(
        conn,
        "an insert of jobs with parents",
        insert_jobs_once(conn, &jobs).await
    ))
}

/// Inserts `jobs` in a transaction of their own, written again whole if PostgreSQL ends it
/// to break a deadlock (see [`RetryPoint`]), as a completion is.
async fn insert_jobs_own(pool: &PgPool, jobs: &[JobInsertParams]) -> Result<Vec<InsertResult>> {
    let write = || async {
        let mut tx = pool.begin().await.map_err(|e| pool_err(pool, e))?;
        let out = insert_jobs_once(&mut tx, jobs).await?;
        tx.commit().await?;
        Ok(out)
    };
    let parents = jobs.iter().any(|j| !j.depends_on.is_empty());
    insert_written_again(parents, "an insert of jobs with parents", write).await
}

/// [`insert_jobs_tx`] in one try, for a caller that writes it again itself.
pub(crate) async fn insert_jobs_once(
    conn: &mut PgConnection,
    jobs: &[JobInsertParams],
) -> Result<Vec<InsertResult>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    for job in jobs {
        job.check_times()?;
    }
    let out = if jobs.iter().any(JobInsertParams::waits) {
        insert_waiting(conn, jobs).await?
    } else {
        let holds = vec![JobHold::default(); jobs.len()];
        insert_rounds(conn, jobs, &holds).await?
    };
    notify_queues(conn, jobs.iter().map(|j| j.queue.clone()).collect()).await?;
    Ok(out)
}

/// Locks the unique keys of `jobs` for the rest of the transaction (`job_unique_lock.sql`) when
/// they are two or more: an insert of one key cannot close a cycle of waits. Taken again by a
/// later insert of the same transaction, a lock it holds does not wait.
pub(super) async fn lock_unique_keys<'a>(
    conn: &mut PgConnection,
    jobs: impl IntoIterator<Item = &'a JobInsertParams>,
) -> Result<()> {
    let mut keys: Vec<&str> = jobs
        .into_iter()
        .filter_map(|j| j.unique_key.as_deref())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    if keys.len() >= 2 {
        sqlx::query(sql!("job_unique_lock"))
            .bind(&keys)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Inserts jobs of which some may wait (a sequence, parents), one by one so that each reads
/// what the previous inserted. Differs from SQLite (whose one writer serializes everything):
/// it first takes the sequences' locks (job_sequence_lock.sql) and locks the parents' rows
/// (job_parents_mark.sql), until the transaction ends, so that a concurrent finalize of a
/// sequence's active job or of a parent either committed before (and is read here) or runs
/// its promotion after this commits (and sees these jobs): see migration 0007.
async fn insert_waiting(
    conn: &mut PgConnection,
    jobs: &[JobInsertParams],
) -> Result<Vec<InsertResult>> {
    lock_unique_keys(conn, jobs).await?;
    let mut keys: Vec<String> = jobs.iter().filter_map(|j| j.sequence_key.clone()).collect();
    keys.sort();
    keys.dedup();
    let mut parent_ids: Vec<i64> = jobs.iter().flat_map(|j| j.depends_on.clone()).collect();
    parent_ids.sort_unstable();
    parent_ids.dedup();
    // With parents, job_parents_mark.sql takes these sequences' locks with its parents'.
    // A caller's transaction at REPEATABLE READ or SERIALIZABLE reads its snapshot, from
    // before the sequences' locks (job_sequence_busy_snapshot.sql): the lock's statement says
    // which, so that a sequence's insert pays no round trip of its own to learn it.
    let mut snapshot = None;
    if !keys.is_empty() && parent_ids.is_empty() {
        let (_, at_snapshot): (i64, bool) = sqlx::query_as(sql!("job_sequence_lock"))
            .bind(&keys)
            .fetch_one(&mut *conn)
            .await?;
        snapshot = Some(at_snapshot);
    }
    let mut parents = HashMap::new();
    if !parent_ids.is_empty() {
        let rows = mark_parents(conn, &parent_ids, &keys).await?;
        for (id, state, _, _) in rows {
            parents.insert(id, state.parse::<JobState>()?);
        }
        // The first missing in the order given, as SQLite and porter_enqueue name it.
        let mut given = jobs.iter().flat_map(|j| &j.depends_on);
        if let Some(missing) = given.find(|id| !parents.contains_key(id)) {
            return Err(crate::store::missing_parent(*missing));
        }
    }
    if jobs.iter().all(|j| j.sequence_key.is_none()) {
        // Without sequences no job's start depends on another of these (parents exist
        // before their children are inserted): one insert for all of them and one for their
        // edges, instead of two round trips per job (a 10,000-step workflow took 20,000).
        let holds = jobs
            .iter()
            .map(|j| j.hold(false, &parents))
            .collect::<Result<Vec<_>>>()?;
        let out = insert_rounds(conn, jobs, &holds).await?;
        insert_edges(conn, jobs, &holds, &out).await?;
        return Ok(out);
    }
    let snapshot = match snapshot {
        Some(at_snapshot) => at_snapshot,
        // (Sequence jobs with parents beside them: the parents' statement took the locks.)
        None => {
            sqlx::query_scalar(
                "SELECT current_setting('transaction_isolation') <> 'read committed'",
            )
            .fetch_one(&mut *conn)
            .await?
        }
    };
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        let busy = match &job.sequence_key {
            Some(key) if snapshot => {
                // The row lock is only for its error: rolled back at once.
                sqlx::query("SAVEPOINT porter_sequence_busy")
                    .execute(&mut *conn)
                    .await?;
                let busy: Option<String> = sqlx::query_scalar(sql!("job_sequence_busy_snapshot"))
                    .bind(key)
                    .fetch_optional(&mut *conn)
                    .await?;
                for end in [
                    "ROLLBACK TO SAVEPOINT porter_sequence_busy",
                    "RELEASE SAVEPOINT porter_sequence_busy",
                ] {
                    sqlx::query(end).execute(&mut *conn).await?;
                }
                busy.is_some()
            }
            Some(key) => {
                let busy: Option<String> = sqlx::query_scalar(sql!("job_sequence_busy"))
                    .bind(key)
                    .fetch_optional(&mut *conn)
                    .await?;
                busy.is_some()
            }
            None => false,
        };
        let hold = job.hold(busy, &parents)?;
        let result = insert_rounds(conn, std::slice::from_ref(job), std::slice::from_ref(&hold))
            .await?
            .remove(0);
        if result.inserted && !hold.edges.is_empty() {
            let n = hold.edges.len();
            sqlx::query(sql!("job_dep_insert"))
                .bind(vec![result.job.id; n])
                .bind(hold.edges.iter().map(|e| e.0).collect::<Vec<_>>())
                .bind(vec![job.after_any; n])
                .bind(hold.edges.iter().map(|e| e.1).collect::<Vec<_>>())
                .execute(&mut *conn)
                .await?;
        }
        out.push(result);
    }
    Ok(out)
}

/// Inserts the edges of jobs just inserted (`out`, as [`insert_rounds`] answered for `jobs`
/// with `holds`) in one statement.
async fn insert_edges(
    conn: &mut PgConnection,
    jobs: &[JobInsertParams],
    holds: &[JobHold],
    out: &[InsertResult],
) -> Result<()> {
    let mut edges: (Vec<i64>, Vec<i64>, Vec<bool>, Vec<bool>) = Default::default();
    for ((job, hold), result) in jobs.iter().zip(holds).zip(out) {
        if result.inserted {
            for &(parent, counted) in &hold.edges {
                edges.0.push(result.job.id);
                edges.1.push(parent);
                edges.2.push(job.after_any);
                edges.3.push(counted);
            }
        }
    }
    if !edges.0.is_empty() {
        sqlx::query(sql!("job_dep_insert"))
            .bind(edges.0)
            .bind(edges.1)
            .bind(edges.2)
            .bind(edges.3)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Inserts jobs as they start ([`JobHold`] each), in input order; a job whose unique key an
/// unfinished job holds is not inserted, and that job is returned with `inserted = false`.
async fn insert_rounds(
    conn: &mut PgConnection,
    jobs: &[JobInsertParams],
    holds: &[JobHold],
) -> Result<Vec<InsertResult>> {
    lock_unique_keys(conn, jobs).await?;
    let mut out: Vec<Option<InsertResult>> = vec![None; jobs.len()];
    // A job whose unique key an earlier job of these takes is held by whatever holds that key
    // once the earlier one is in: it is not sent. Each statement then has a key once, and its
    // returned rows match its jobs by key alone: two jobs of one key in a statement, the first
    // held by a job whose end committed while the statement ran, could have the second's row
    // matched to the first. (A job starting cancelled takes no key: see `match_inserted`.)
    let mut first_of_key: HashMap<&str, usize> = HashMap::new();
    let mut repeats: Vec<(usize, usize)> = Vec::new();
    let mut pending: Vec<usize> = Vec::with_capacity(jobs.len());
    for (i, job) in jobs.iter().enumerate() {
        let takes_key = holds[i].state != Some(JobState::Cancelled);
        match job.unique_key.as_deref().filter(|_| takes_key) {
            Some(key) => match first_of_key.get(key) {
                Some(&first) => repeats.push((i, first)),
                None => {
                    first_of_key.insert(key, i);
                    pending.push(i);
                }
            },
            None => pending.push(i),
        }
    }
    for _ in 0..UNIQUE_ROUNDS {
        let batch: Vec<&JobInsertParams> = pending.iter().map(|&i| &jobs[i]).collect();
        let batch_holds: Vec<&JobHold> = pending.iter().map(|&i| &holds[i]).collect();
        let rows = insert_batch(conn, &batch, &batch_holds).await?;
        let mut held = Vec::new();
        for (&i, row) in pending.iter().zip(rows) {
            match row {
                Some(row) => {
                    out[i] = Some(InsertResult {
                        job: row,
                        inserted: true,
                    })
                }
                None if jobs[i].unique_key.is_none() => {
                    return Err(Error::Database(
                        "the insert returned fewer rows than it was given".into(),
                    ))
                }
                None => held.push(i),
            }
        }
        if held.is_empty() {
            pending.clear();
            break;
        }
        let keys: Vec<String> = held
            .iter()
            .filter_map(|&i| jobs[i].unique_key.clone())
            .collect();
        let holders: HashMap<String, JobRow> = sqlx::query(sql!("job_get_unique"))
            .bind(keys)
            .try_map(job_from_row)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .filter_map(|row| Some((row.unique_key.clone()?, row)))
            .collect();
        // A holder that finished in between frees its key: insert that job again.
        pending = held
            .into_iter()
            .filter(
                |&i| match jobs[i].unique_key.as_ref().and_then(|k| holders.get(k)) {
                    Some(row) => {
                        out[i] = Some(InsertResult {
                            job: row.clone(),
                            inserted: false,
                        });
                        false
                    }
                    None => true,
                },
            )
            .collect();
        if pending.is_empty() {
            break;
        }
    }
    if let Some(&i) = pending.first() {
        return Err(Error::Conflict(format!(
            "unique key {:?} kept changing hands while inserting; try again",
            jobs[i].unique_key.as_deref().unwrap_or_default()
        )));
    }
    for (i, first) in repeats {
        let holder = out[first]
            .as_ref()
            .expect("every job sent has a result")
            .job
            .clone();
        out[i] = Some(InsertResult {
            job: holder,
            inserted: false,
        });
    }
    Ok(out
        .into_iter()
        .map(|r| r.expect("every job has a result"))
        .collect())
}

/// Makes a queue's due scheduled and retryable jobs available.
async fn promote_due(conn: &mut PgConnection, queue: &str) -> Result<u64> {
    Ok(sqlx::query(sql!("job_promote_due"))
        .bind(queue)
        .execute(&mut *conn)
        .await?
        .rows_affected())
}

/// Claims up to the limit of a queue's available due jobs that sort after `from`, unless the
/// queue is paused or has limits (then nothing).
async fn claim_available(
    conn: &mut PgConnection,
    params: &JobClaimParams,
    from: cursor::Position,
) -> Result<Vec<JobRow>> {
    Ok(sqlx::query(sql!("job_claim"))
        .bind(&params.queue)
        .bind(&params.worker_id)
        .bind(&params.kinds)
        .bind(i64::from(params.limit))
        .bind(from.priority)
        .bind(from.scheduled_at)
        .bind(from.id)
        .try_map(job_from_row)
        .fetch_all(&mut *conn)
        .await?)
}

/// Completes jobs (fenced): one statement for the whole batch. Returns the fences that
/// matched, and how many of the jobs completed had dependents, a sequence or a batch: their
/// ends may have made other jobs available.
async fn complete_releasing(
    conn: &mut PgConnection,
    fences: &[JobFence],
) -> Result<(Vec<JobFence>, usize)> {
    // In id order: the statement locks the rows in the order of the fences, and a bulk
    // cancel or delete locks the same running rows in id order; in another order the two
    // waited for each other and PostgreSQL aborted one as a deadlock.
    let mut fences: Vec<&JobFence> = fences.iter().collect();
    fences.sort_unstable_by_key(|f| f.id);
    let ids: Vec<i64> = fences.iter().map(|f| f.id).collect();
    let attempts: Vec<i32> = fences.iter().map(|f| f.attempt).collect();
    let workers: Vec<&str> = fences.iter().map(|f| f.worker_id.as_str()).collect();
    // The statement's trigger then locks the waiting children of the jobs it completed, which
    // a cancel of such a child and of a younger running job takes the other way round (see
    // `again_if_deadlocked`). On the caller's connection, so a loop here rather than that
    // helper, whose closure could not lend it out again each try.
    let mut tries = 1;
    let completed: Vec<(i64, i32, String, bool)> = loop {
        let out = sqlx::query_as(sql!("job_complete"))
            .bind(&ids)
            .bind(&attempts)
            .bind(&workers)
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err);
        match out {
            Err(e) if again("a completion", &mut tries, &e) => {}
            out => break out?,
        }
    };
    let released = completed.iter().filter(|c| c.3).count();
    let rows = completed
        .into_iter()
        .map(|(id, attempt, worker, _)| (id, attempt, worker));
    Ok((fences_from(rows.collect()), released))
}

/// Fences from rows of (id, attempt, worker).
fn fences_from(rows: Vec<(i64, i32, String)>) -> Vec<JobFence> {
    rows.into_iter()
        .map(|(id, attempt, worker_id)| JobFence {
            id,
            attempt,
            worker_id,
        })
        .collect()
}

/// A batch of at least this many completions that claims along is written in two halves at
/// once, and so is the claim after it when at least this many of the jobs completed had
/// dependents, a sequence or a batch and its limit is at least this many.
const HALVES_FROM: usize = 64;

/// Large batches of completions, and the claims along them, as two statements at once.
///
/// A batch's completion and the claim after it run one after the other on one connection, so
/// one backend, one core. Where each link of a workflow's chains waits for the one before
/// (100 chains of 100 steps: 99 links, each the completion of 100 jobs, the trigger's release
/// of their 100 children, and the claim of those), that was about one core busy while the
/// other idled. So a large batch that claims along (`job_complete_claim`) is split, by id,
/// into two halves written at once on two connections, each half a transaction of its own, and
/// the claim for the jobs they made available into two claims at once. Measured on 4 Dec
/// (release build, 2 cores, alternating runs of `porter bench --workflow` at 1000 slots,
/// medians): the chains' drain took 0.71 s against 0.86 s (5 runs), and 0.63 s against 0.78 s
/// (5 more). A batch written without a claim (`job_complete_many`: the plain drain's, where
/// producers' claims keep the other core busy) stays one statement: split too, the plain drain
/// was slower in one series (0.34 s against 0.29 s) and no faster in the next.
///
/// The halves lock their rows in id order, as one statement does, each its own; a child of
/// parents in both halves is written by one half's trigger after the other's commit (a row
/// lock), as when two workers complete its parents at once. Only a connection the pool has idle
/// is taken for the second half, once per batch for its completion and its claims, and only
/// after it answers a ping ([`PgStore::idle_conn`]): a busy pool writes one statement, as
/// before.
impl PgStore {
    /// Completes a batch ([`complete_releasing`]), in two halves at once when there is a
    /// second connection (`other`, see [`PgStore::idle_conn`]). A half that fails is written
    /// again on the connection of the half that went through (the failed one may be broken:
    /// it is closed, and `conn` is left holding the good one, for the claims after). If that
    /// fails too, the whole batch fails, as one statement's failure does, and the completer
    /// writes it all again; the half committed then reads as fenced off, and the completer
    /// looks those up ([`Store::job_completed_already`](crate::store::Store::job_completed_already))
    /// to tell their ends to the runtime's events. Answered as fenced
    /// off instead, the failed half's jobs would have stayed `running` under this live worker,
    /// out of reach of a reconcile that looks only at recent claims.
    async fn complete_in_halves(
        &self,
        conn: &mut PgPooled,
        other: &mut Option<PgPooled>,
        fences: &[JobFence],
    ) -> Result<(Vec<JobFence>, usize)> {
        let Some(second) = other.as_mut() else {
            return complete_releasing(conn, fences).await;
        };
        let mut sorted = fences.to_vec();
        sorted.sort_unstable_by_key(|f| f.id);
        let (low, high) = sorted.split_at(sorted.len() / 2);
        let (a, b) = tokio::join!(
            complete_releasing(&mut *conn, low),
            complete_releasing(&mut *second, high)
        );
        let ((mut done, n), failed, e) = match (a, b) {
            (Ok((mut done, n)), Ok((more, m))) => {
                done.extend(more);
                return Ok((done, n + m));
            }
            (Err(e), Err(_)) => return Err(e),
            (Ok(done), Err(e)) => (done, high, e),
            (Err(e), Ok(done)) => {
                std::mem::swap(conn, second);
                (done, low, e)
            }
        };
        if let Some(mut broken) = other.take() {
            broken.close_on_drop();
        }
        tracing::debug!(error = %e, jobs = failed.len(), "half a batch of completions failed; writing it again on the other half's connection");
        let (more, m) = complete_releasing(conn, failed).await?;
        done.extend(more);
        Ok((done, n + m))
    }

    /// The claim along completions that made jobs available (`freed` of the jobs completed
    /// had dependents, a sequence or a batch): when there are many and a second connection,
    /// two claims at once, both from the cursor (see [`cursor`]), the first for at most half of
    /// `freed` and the second for the rest of the limit. Each skips the rows the other has
    /// locked, so together they take what one claim would: the first jobs in the queue's
    /// order, up to the limit (how they share them depends on which runs first). One that
    /// fails leaves the other's jobs answered (what it may have claimed is put back by the
    /// reconcile, as with any claim whose answer was lost), and its connection closed.
    async fn claim_in_halves(
        &self,
        conn: &mut PgPooled,
        other: &mut Option<PgPooled>,
        params: &JobClaimParams,
        freed: usize,
    ) -> Result<Vec<JobRow>> {
        let first = (freed / 2).min(params.limit as usize / 2);
        let second = match other.as_mut() {
            Some(second) if first >= HALVES_FROM / 2 => second,
            _ => return self.claim_plain(conn, params).await,
        };
        let mut low = params.clone();
        low.limit = first as u32;
        let mut rest = params.clone();
        rest.limit = params.limit - low.limit;
        let (a, b) = tokio::join!(
            self.claim_plain(&mut *conn, &low),
            self.claim_plain(&mut *second, &rest)
        );
        // The connection of a claim that failed goes; `conn` keeps the good one.
        let (jobs, e) = match (a, b) {
            (Ok(mut jobs), Ok(more)) => {
                jobs.extend(more);
                return Ok(jobs);
            }
            (Err(e), Err(_)) => return Err(e),
            (Ok(jobs), Err(e)) => (jobs, e),
            (Err(e), Ok(jobs)) => {
                std::mem::swap(conn, second);
                (jobs, e)
            }
        };
        if let Some(mut broken) = other.take() {
            broken.close_on_drop();
        }
        tracing::warn!(error = %e, queue = params.queue, "half of a claim along completions failed; its jobs, if any, are put back by the reconcile");
        Ok(jobs)
    }
}

impl PgStore {
    /// The fences a statement of (worker $1, job ids $2) answers: the worker's jobs among
    /// those asking for something (a cancel, a give-back).
    async fn fences_among(
        &self,
        sql: &'static str,
        worker_id: &str,
        among: &[i64],
    ) -> Result<Vec<JobFence>> {
        let rows: Vec<(i64, i32, String)> = sqlx::query_as(sql)
            .bind(worker_id)
            .bind(among)
            .fetch_all(&mut *self.conn().await?)
            .await?;
        Ok(fences_from(rows))
    }
}

/// The plain claim and the promotion before it, which keep the queue's claim cursor.
impl PgStore {
    /// Promotes the queue's due jobs: those promoted may sort before its claim cursor.
    async fn promote(&self, conn: &mut PgConnection, queue: &str) -> Result<()> {
        if promote_due(conn, queue).await? > 0 {
            self.cursors.rewind(queue);
        }
        Ok(())
    }

    /// The plain claim (`job_claim.sql`), from where the queue's cursor says.
    async fn claim_plain(
        &self,
        conn: &mut PgConnection,
        params: &JobClaimParams,
    ) -> Result<Vec<JobRow>> {
        let walk = self
            .cursors
            .walk(&params.queue, &params.kinds, Instant::now());
        let jobs = claim_available(conn, params, walk.from).await?;
        let newest = jobs.iter().map(cursor::Position::of).max();
        self.cursors
            .taken(&params.queue, &params.kinds, walk, newest, Instant::now());
        Ok(jobs)
    }
}

#[async_trait::async_trait]
impl Driver for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn database(&self) -> Option<Database<'_>> {
        Some(Database::Postgres(self))
    }

    fn wakeup(&self) -> &Arc<Wakeup> {
        &self.wakeup
    }

    async fn now(&self) -> Result<DateTime<Utc>> {
        Ok(sqlx::query_scalar("SELECT porter_now()")
            .fetch_one(&mut *self.conn().await?)
            .await?)
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT count(*) FROM porter_queues")
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(())
    }

    async fn job_insert_many(&self, jobs: Vec<JobInsertParams>) -> Result<Vec<InsertResult>> {
        if group::Inserter::joins(&jobs) {
            // Checked before joining, so that a bad time fails its own insert only.
            for job in &jobs {
                job.check_times()?;
            }
            return self.inserter.insert(jobs).await;
        }
        insert_jobs_own(self.pool(), &jobs).await
    }

    async fn job_get(&self, id: i64) -> Result<Option<JobRow>> {
        Ok(sqlx::query(sql!("job_get_recorded"))
            .bind(id)
            .try_map(|r: PgRow| {
                let output = r.try_get("recorded_output")?;
                let progress = r.try_get("recorded_progress")?;
                let mut row = job_from_row(r)?;
                (row.output, row.progress) = (output, progress);
                Ok(row)
            })
            .fetch_optional(&mut *self.conn().await?)
            .await?)
    }

    async fn batch_insert(&self, params: BatchInsertParams) -> Result<BatchInserted> {
        self.batch_insert_own(params).await
    }

    async fn batch_list(
        &self,
        before_id: Option<i64>,
        limit: u32,
        only: Option<i64>,
    ) -> Result<Vec<BatchRow>> {
        self.batch_list_page(before_id, limit, only).await
    }

    async fn workflow_insert(&self, params: WorkflowInsertParams) -> Result<WorkflowInserted> {
        self.workflow_insert_own(params).await
    }

    async fn workflow_list(&self, before_id: Option<i64>, limit: u32) -> Result<Vec<WorkflowRow>> {
        self.workflow_list_page(before_id, limit).await
    }

    async fn workflow_get(&self, id: i64, page: StepPage) -> Result<Option<WorkflowParts>> {
        self.workflow_parts(id, page).await
    }

    async fn job_workflow(&self, id: i64) -> Result<Option<crate::store::workflow::JobWorkflow>> {
        // A plain INSERT may tag a job with a workflow and no step.
        let row: Option<(i64, String, Option<String>)> = sqlx::query_as(sql!("job_workflow"))
            .bind(id)
            .fetch_optional(&mut *self.conn().await?)
            .await?;
        Ok(
            row.map(|(id, name, step)| crate::store::workflow::JobWorkflow {
                id,
                name,
                step: step.unwrap_or_default(),
            }),
        )
    }

    async fn workflow_cancel(&self, id: i64) -> Result<Option<Vec<JobChange>>> {
        self.workflow_cancel_all(id).await
    }

    async fn job_list(&self, params: JobListParams) -> Result<Vec<JobRow>> {
        let states: Vec<&str> = params.states.iter().map(|s| s.as_str()).collect();
        Ok(sqlx::query(sql!("job_list"))
            .bind(&params.kind)
            .bind(&params.queue)
            .bind(params.before_id)
            .bind(states)
            .bind(i64::from(params.effective_limit()))
            .try_map(job_from_row)
            .fetch_all(&mut *self.conn().await?)
            .await?)
    }

    async fn job_counts(&self) -> Result<Vec<JobCountRow>> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(sql!("job_counts"))
            .fetch_all(&mut *self.conn().await?)
            .await?;
        rows.into_iter()
            .map(|(queue, state, count)| {
                Ok(JobCountRow {
                    queue,
                    state: state.parse()?,
                    count,
                })
            })
            .collect()
    }

    async fn job_claim(&self, params: JobClaimParams, ahead: ClaimAhead) -> Result<JobClaimed> {
        // A queue that had limits at the producer's last claim goes straight to the limited
        // claim: the plain claim would take nothing, and the look at the limits after it would
        // cost two more round trips.
        if !ahead.limited {
            let mut conn = self.conn().await?;
            self.promote(&mut conn, &params.queue).await?;
            let jobs = self.claim_plain(&mut conn, &params).await?;
            if !jobs.is_empty() {
                return Ok(JobClaimed {
                    jobs,
                    ..Default::default()
                });
            }
            // Nothing taken: the queue is empty, paused, or has limits (job_claim.sql leaves
            // those to the limited claim). A look without a transaction first, so that an idle
            // queue without limits pays one cheap statement and no BEGIN/COMMIT.
            let limited = sqlx::query(sql!("job_claim_limits"))
                .bind(&params.queue)
                .try_map(|r: PgRow| limits_from_row(&r, 0))
                .fetch_optional(&mut *conn)
                .await?;
            if limited.is_none() {
                return Ok(JobClaimed::default());
            }
        }
        let mut tx = self.begin().await?;
        if ahead.limited {
            self.promote(&mut tx, &params.queue).await?;
        }
        // Read again under the lock: the limits as they are while this claim holds the queue.
        let Some(limits) = sqlx::query(sql!("job_claim_limits"))
            .bind(&params.queue)
            .try_map(|r: PgRow| limits_from_row(&r, 0))
            .fetch_optional(&mut *tx)
            .await?
        else {
            // No limits (any more), or paused: the plain claim, which takes nothing from a
            // paused queue.
            let jobs = self.claim_plain(&mut tx, &params).await?;
            tx.commit().await?;
            return Ok(JobClaimed {
                jobs,
                ..Default::default()
            });
        };
        let longest = [limits.rate, limits.rate_per_key]
            .into_iter()
            .flatten()
            .map(|r| r.period_ms)
            .max();
        if let Some(longest) = longest {
            sqlx::query(sql!("queue_starts_prune"))
                .bind(&params.queue)
                .bind(longest.min(i64::MAX as u64) as i64)
                .execute(&mut *tx)
                .await?;
        }
        let (limit, for_slots) = ahead.within(params.limit, &limits);
        let (rate, rate_ms) = rate_columns(limits.rate);
        let (key_rate, key_rate_ms) = rate_columns(limits.rate_per_key);
        let jobs = sqlx::query(sql!("job_claim_limited"))
            .bind(&params.queue)
            .bind(&params.worker_id)
            .bind(&params.kinds)
            .bind(i64::from(limit))
            .bind(limits.concurrency.map(|n| n as i32))
            .bind(limits.per_key.map(|n| n as i32))
            .bind(rate)
            .bind(rate_ms)
            .bind(key_rate)
            .bind(key_rate_ms)
            .bind(i64::from(for_slots))
            .bind(i64::from(ahead.waiting))
            .bind(i64::from(ahead.in_slots))
            .try_map(job_from_row)
            .fetch_all(&mut *tx)
            .await?;
        let held_back = jobs.len() < params.limit as usize
            && sqlx::query_scalar::<_, bool>(sql!("job_claim_left"))
                .bind(&params.queue)
                .bind(&params.kinds)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(JobClaimed {
            jobs,
            held_back,
            limited: true,
            rate_limited: longest.is_some(),
            more_at_once: limits.per_key_any(),
        })
    }

    async fn job_complete_many(&self, fences: Vec<JobFence>) -> Result<Vec<JobFence>> {
        Ok(complete_releasing(&mut *self.conn().await?, &fences)
            .await?
            .0)
    }

    async fn job_complete_claim(
        &self,
        fences: Vec<JobFence>,
        claims: Vec<JobClaimParams>,
    ) -> Result<(Vec<JobFence>, Vec<Vec<JobRow>>)> {
        // Differs from SQLite: the claims follow the completion's commit, each statement in a
        // transaction of its own, rather than share its transaction. (A claim used to record
        // its time as porter_now(), which in the completion's transaction could come before
        // another worker's commit of a parent the completion's trigger waited for; claims now
        // record the clock at the row's update, so that reason is gone. Sharing the
        // transaction was measured since, 4 alternating runs of `porter bench --workflow`:
        // the chains' drain did not get faster, so the claims keep their own commits. Measured
        // again on 2 Dec, 5 alternating runs: 0.58 s both ways. And shared, a forced full claim,
        // which can walk for a second while a transaction is held open elsewhere, ran with
        // the completion's row and sequence locks held, and moved the cursors before a commit
        // that could still fail.)
        let mut conn = self.conn().await?;
        let mut other = match fences.len() >= HALVES_FROM {
            true => self.idle_conn().await,
            false => None,
        };
        let (completed, freed) = self
            .complete_in_halves(&mut conn, &mut other, &fences)
            .await?;
        // The completions are committed: a claim that fails now must not report them as not
        // written (a retry would find them fenced off). Its queue gets no jobs here; jobs of a
        // claim whose answer was lost are put back by the worker's reconcile.
        let mut claimed = Vec::with_capacity(claims.len());
        for params in &claims {
            // The jobs these completions made available keep their due times, and so sort
            // behind the cursor: a full claim for them, whatever it costs.
            if freed > 0 {
                self.cursors.force(&params.queue);
            }
            let jobs = match self.promote(&mut conn, &params.queue).await {
                Ok(()) => {
                    self.claim_in_halves(&mut conn, &mut other, params, freed)
                        .await
                }
                Err(e) => Err(e),
            };
            match jobs {
                Ok(jobs) => claimed.push(jobs),
                Err(e) => {
                    tracing::warn!(error = %e, queue = params.queue, "claiming along after completions failed; the producers claim themselves");
                    break;
                }
            }
        }
        claimed.resize_with(claims.len(), Vec::new);
        Ok((completed, claimed))
    }

    async fn job_fail(&self, p: JobFailParams) -> Result<Option<JobRow>> {
        let f = &p.fence;
        Ok(sqlx::query(sql!("job_fail"))
            .bind(f.id)
            .bind(f.attempt)
            .bind(&f.worker_id)
            .bind(&p.error)
            .bind(&p.trace)
            .bind(secs(p.retry_in))
            .bind(p.discard)
            .try_map(job_from_row)
            .fetch_optional(&mut *self.conn().await?)
            .await?)
    }

    async fn job_snooze(&self, p: JobSnoozeParams) -> Result<Option<JobRow>> {
        let f = &p.fence;
        Ok(sqlx::query(sql!("job_snooze"))
            .bind(f.id)
            .bind(f.attempt)
            .bind(&f.worker_id)
            .bind(secs(p.delay))
            .bind(super::CANCELLED_BY_USER)
            .try_map(job_from_row)
            .fetch_optional(&mut *self.conn().await?)
            .await?)
    }

    async fn job_output_record(&self, p: JobRecordParams) -> Result<bool> {
        let f = &p.fence;
        let written: Option<(i64,)> = sqlx::query_as(sql!("job_output_record"))
            .bind(f.id)
            .bind(f.attempt)
            .bind(&f.worker_id)
            .bind(&p.output)
            .bind(&p.progress)
            .fetch_optional(&mut *self.conn().await?)
            .await?;
        Ok(written.is_some())
    }

    async fn job_output_get(&self, ids: Vec<i64>) -> Result<Vec<(i64, JobOutput)>> {
        type Recorded = (i64, Option<serde_json::Value>, Option<serde_json::Value>);
        let rows: Vec<Recorded> = sqlx::query_as(sql!("job_output_get"))
            .bind(ids)
            .fetch_all(&mut *self.conn().await?)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, output, progress)| (id, JobOutput { output, progress }))
            .collect())
    }

    async fn job_parent_outputs(
        &self,
        id: i64,
    ) -> Result<Vec<(JobLink, Option<serde_json::Value>)>> {
        type Row = (i64, String, String, bool, Option<serde_json::Value>);
        let rows: Vec<Row> = sqlx::query_as(sql!("job_parent_outputs"))
            .bind(id)
            .fetch_all(&mut *self.conn().await?)
            .await?;
        rows.into_iter()
            .map(|(id, state, kind, after_any, output)| {
                Ok((JobLink::from_columns(id, &state, kind, after_any)?, output))
            })
            .collect()
    }

    async fn job_deps(&self, id: i64, limit: Option<u32>) -> Result<JobDeps> {
        let mut conn = self.conn().await?;
        let rows: Vec<(String, i64, String, String, bool, i64)> = sqlx::query_as(sql!("job_deps"))
            .bind(id)
            .bind(limit.map_or(-1, i64::from))
            .fetch_all(&mut *conn)
            .await?;
        let batch: Option<(i64, Option<bool>)> = sqlx::query_as(sql!("job_batch"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        let mut deps = JobDeps::default();
        for (relation, id, state, kind, after_any, total) in rows {
            let link = JobLink::from_columns(id, &state, kind, after_any)?;
            deps.add(&relation, link, total);
        }
        deps.batch = batch.map(|(id, callback)| JobBatch {
            id,
            callback: callback == Some(true),
        });
        Ok(deps)
    }

    async fn job_links(
        &self,
        id: i64,
        children: bool,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<JobLink>> {
        let rows: Vec<(i64, String, String, bool)> = sqlx::query_as(sql!("job_links"))
            .bind(id)
            .bind(children)
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(&mut *self.conn().await?)
            .await?;
        rows.into_iter()
            .map(|(id, state, kind, after_any)| JobLink::from_columns(id, &state, kind, after_any))
            .collect()
    }

    async fn job_list_running(
        &self,
        worker_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<JobFence>> {
        let rows: Vec<(i64, i32)> = sqlx::query_as(sql!("job_list_running"))
            .bind(worker_id)
            .bind(since)
            .fetch_all(&mut *self.conn().await?)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, attempt)| JobFence {
                id,
                attempt,
                worker_id: worker_id.to_string(),
            })
            .collect())
    }

    async fn job_release(&self, p: JobReleaseParams) -> Result<Option<JobRow>> {
        let f = &p.fence;
        let mut tx = self.begin().await?;
        // Given back unstarted, a job whose parent ran again since its claim is judged again by
        // its parents: their rows (and sequence locks) first, below its own, then the question,
        // asked while it still runs under the fence.
        let mut judge = false;
        if !p.started {
            sqlx::query(sql!("job_release_lock"))
                .bind(f.id)
                .bind(f.attempt)
                .bind(&f.worker_id)
                .execute(&mut *tx)
                .await?;
            judge = sqlx::query(sql!("job_parents_ran_again"))
                .bind(&f.worker_id)
                .bind(vec![f.id])
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
        }
        let row = sqlx::query(sql!("job_release"))
            .bind(f.id)
            .bind(f.attempt)
            .bind(&f.worker_id)
            .bind(&p.reason)
            .bind(p.started)
            .bind(super::CANCELLED_BY_USER)
            .try_map(job_from_row)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(mut row) = row else {
            return Ok(None);
        };
        if judge
            && row.state == JobState::Available
            && sqlx::query(sql!("job_release_wait"))
                .bind(f.id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0
        {
            sqlx::query(sql!("job_release_decide"))
                .bind(f.id)
                .execute(&mut *tx)
                .await?;
            row = one_job(&mut tx, f.id)
                .await?
                .ok_or_else(|| Error::not_found("job", f.id))?;
        }
        // Due at once: wake the queue's producers in every process, as an insert does.
        notify_queues(&mut tx, vec![row.queue.clone()]).await?;
        tx.commit().await?;
        Ok(Some(row))
    }

    async fn job_cancel_running(&self, p: JobCancelRunningParams) -> Result<Option<JobRow>> {
        let f = &p.fence;
        Ok(sqlx::query(sql!("job_cancel_running"))
            .bind(f.id)
            .bind(f.attempt)
            .bind(&f.worker_id)
            .bind(&p.reason)
            .bind(p.started)
            .try_map(job_from_row)
            .fetch_optional(&mut *self.conn().await?)
            .await?)
    }

    async fn job_cancel(&self, id: i64) -> Result<Option<JobRow>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(sql!("job_cancel"))
            .bind(id)
            .try_map(job_from_row)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        // A running job was only asked to stop: tell its worker, wherever it runs, at commit.
        if let (JobState::Running, Some(worker)) = (row.state, &row.attempted_by) {
            sqlx::query(sql!("job_cancel_notify"))
                .bind(worker)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Some(row))
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
        // The sequence locks of the job and its parents, then its parents, the job and its
        // waiting (or not yet started) children, in id order, as a bulk retry takes them (see
        // job_retry_many_lock.sql). The parents are locked before the retry reads their
        // states, as an insert of a child locks them (see job_retry.sql). The children, whose
        // trigger sends them back to wait for the job in statements of their own: a child
        // another parent's completion was freeing, uncommitted, still looked pending to the
        // first and had become available for the next, and the retry let it run while the
        // retried parent ran again. A completion locks its batch, then, through its trigger,
        // the children it frees, which may be this job's parents: the two can deadlock, and
        // the retry is written again then, as a bulk retry is (until 7 Dec it failed).
        again_if_deadlocked("a retry", || async {
            let mut tx = self.begin().await?;
            let (_, judged, ended, _): (i64, Vec<i64>, Vec<i64>, Vec<i64>) =
                sqlx::query_as(sql!("job_retry_many_lock"))
                    .bind(vec![id])
                    .bind(true)
                    .fetch_one(&mut *tx)
                    .await?;
            let row = sqlx::query(sql!("job_retry"))
                .bind(id)
                .bind(judged.contains(&id))
                .bind(ended.contains(&id))
                .try_map(job_from_row)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            notify_queues(&mut tx, vec![row.queue.clone()]).await?;
            sqlx::query(sql!("job_retry_notify_children"))
                .bind(vec![id])
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(row))
        })
        .await
    }

    async fn job_delete_finalized(&self, p: JobDeleteFinalizedParams) -> Result<u64> {
        let mut conn = self.conn().await?;
        let mut deleted = 0u64;
        for (state, age) in [
            ("completed", p.completed),
            ("cancelled", p.cancelled),
            ("discarded", p.discarded),
        ] {
            // Unlike SQLite's one statement per state, bounded batches: each is its own short
            // transaction, so a large clean-up never holds many row locks at once.
            loop {
                let batch = u64::from(p.limit).saturating_sub(deleted).min(DELETE_BATCH);
                if batch == 0 {
                    break;
                }
                // Picked and locked, then deleted by a statement whose snapshot follows the
                // locks (see job_delete_finalized.sql).
                let mut tx = conn.begin().await?;
                let picked: Vec<i64> = sqlx::query_scalar(sql!("job_delete_finalized_pick"))
                    .bind(state)
                    .bind(secs(age))
                    .bind(batch as i64)
                    .fetch_all(&mut *tx)
                    .await?;
                let done = sqlx::query(sql!("job_delete_finalized"))
                    .bind(state)
                    .bind(secs(age))
                    .bind(&picked)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                deleted += done;
                if (picked.len() as u64) < batch || done == 0 {
                    break;
                }
            }
        }
        Ok(deleted)
    }

    async fn job_rescue(&self, p: JobRescueParams) -> Result<Rescued> {
        // Each statement commits on its own: one failing (stuck rescue of one kind, say) must
        // never roll back another (the rescue of a lost worker's jobs).
        let limit = i64::from(p.limit);
        let lost = async {
            Ok(sqlx::query_as(sql!("job_rescue_lost"))
                .bind(secs(p.lease))
                .bind(limit)
                .bind(&p.by)
                .fetch_all(&mut *self.conn().await?)
                .await?)
        };
        let mut outcomes = vec![lost.await];
        // The rescuer's own limits, for jobs whose worker registered none.
        let (kinds, limits): (Vec<String>, Vec<f64>) = p
            .stuck_after
            .iter()
            .map(|(k, d)| (k.clone(), stored_ms(*d) as f64))
            .unzip();
        let (ending_ids, ending_attempts): (Vec<i64>, Vec<i32>) = p.ending.iter().copied().unzip();
        let stuck = async {
            Ok(sqlx::query_as(sql!("job_rescue_stuck"))
                .bind(kinds)
                .bind(limits)
                .bind(limit)
                .bind(secs(p.lease))
                .bind(&p.by)
                .bind(ending_ids)
                .bind(ending_attempts)
                .fetch_all(&mut *self.conn().await?)
                .await?)
        };
        outcomes.push(stuck.await);
        Rescued::from_outcomes(outcomes)
    }

    async fn queue_due(&self) -> Result<Vec<QueueDueRow>> {
        let rows: Vec<(String, i64, DateTime<Utc>)> = sqlx::query_as(sql!("queue_due"))
            .fetch_all(&mut *self.conn().await?)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(queue, depth, oldest_due_at)| QueueDueRow {
                queue,
                depth,
                oldest_due_at,
            })
            .collect())
    }

    async fn queue_list(&self, after: Option<String>, limit: u32) -> Result<Vec<QueueRow>> {
        Ok(sqlx::query(sql!("queue_list"))
            .bind(after)
            .bind(i64::from(limit))
            .try_map(|r: PgRow| queue_from_row(&r))
            .fetch_all(&mut *self.conn().await?)
            .await?)
    }

    async fn queue_limited(&self) -> Result<Vec<QueueRow>> {
        Ok(sqlx::query(sql!("queue_limited"))
            .try_map(|r: PgRow| queue_from_row(&r))
            .fetch_all(&mut *self.conn().await?)
            .await?)
    }

    async fn queue_limit_set(&self, p: QueueLimitParams) -> Result<QueueRow> {
        let (rate, rate_ms) = rate_columns(p.set.rate);
        let (key_rate, key_rate_ms) = rate_columns(p.set.rate_per_key);
        let mut tx = self.begin().await?;
        let row = sqlx::query(sql!("queue_limit_set"))
            .bind(&p.queue)
            .bind(p.clear)
            .bind(p.set.concurrency.map(|n| n as i32))
            .bind(p.set.per_key.map(|n| n as i32))
            .bind(rate)
            .bind(rate_ms)
            .bind(key_rate)
            .bind(key_rate_ms)
            .try_map(|r: PgRow| queue_from_row(&r))
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or_else(|| QueueRow::unrecorded(&p.queue));
        sqlx::query(sql!("queue_starts_forget"))
            .bind(&p.queue)
            .execute(&mut *tx)
            .await?;
        // A limit raised or removed may let jobs start: other processes' producers look. Their
        // jobs claimed ahead under the old limits go back.
        notify_queues(&mut tx, vec![p.queue.clone()]).await?;
        notify_control(&mut tx, &p.queue).await?;
        tx.commit().await?;
        Ok(row)
    }

    async fn queue_limit_usage(&self) -> Result<Vec<QueueKeyUsage>> {
        Ok(sqlx::query(sql!("queue_limit_usage"))
            .try_map(|r: PgRow| {
                Ok(QueueKeyUsage {
                    queue: r.try_get(0)?,
                    key: r.try_get(1)?,
                    available: r.try_get(2)?,
                    running: r.try_get(3)?,
                    key_starts: r.try_get(4)?,
                    queue_starts: r.try_get(5)?,
                })
            })
            .fetch_all(&mut *self.conn().await?)
            .await?)
    }

    async fn queue_pause(&self, name: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(sql!("queue_pause"))
            .bind(name)
            .execute(&mut *tx)
            .await?;
        // Workers give back the queue's jobs they claimed ahead and have not started.
        notify_control(&mut tx, name).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn queue_changes(&self, name: &str) -> Result<i64> {
        let n: Option<i64> = sqlx::query_scalar(sql!("queue_changes"))
            .bind(name)
            .fetch_optional(&mut *self.conn().await?)
            .await?;
        Ok(n.unwrap_or(0))
    }

    async fn queue_resume(&self, name: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(sql!("queue_resume"))
            .bind(name)
            .execute(&mut *tx)
            .await?;
        notify_queues(&mut tx, vec![name.to_string()]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn worker_heartbeat(&self, p: WorkerHeartbeatParams) -> Result<()> {
        sqlx::query(sql!("worker_heartbeat"))
            .bind(&p.id)
            .bind(&p.host)
            .bind(p.pid)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(())
    }

    async fn worker_register(&self, p: WorkerRegisterParams) -> Result<()> {
        let (since_last, margin) = crate::store::heartbeat_gap(&p);
        sqlx::query(sql!("worker_register"))
            .bind(&p.id)
            .bind(&p.host)
            .bind(p.pid)
            .bind(stored_ms(p.lease))
            .bind(stored_limits(&p.stuck_after))
            .bind(serde_json::json!(p.queues))
            .bind(serde_json::json!(p.kinds))
            .bind(p.unsteady)
            .bind(since_last)
            .bind(margin)
            .execute(&mut *self.heartbeat_conn().await?)
            .await?;
        Ok(())
    }

    async fn worker_count_serving(&self, p: WorkerServingParams) -> Result<i64> {
        Ok(sqlx::query_scalar(sql!("worker_count_serving"))
            .bind(secs(p.lease))
            .bind(&p.queue)
            .bind(&p.kind)
            .fetch_one(&mut *self.conn().await?)
            .await?)
    }

    async fn job_unserved(&self, lease: Duration) -> Result<Vec<UnservedRow>> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(sql!("job_unserved"))
            .bind(secs(lease))
            .fetch_all(&mut *self.conn().await?)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(queue, kind, count)| UnservedRow { queue, kind, count })
            .collect())
    }

    async fn worker_delete(&self, id: &str) -> Result<()> {
        sqlx::query(sql!("worker_delete"))
            .bind(id)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(())
    }

    async fn worker_list(&self) -> Result<Vec<WorkerRow>> {
        // Anything but a list of names (another program's row) reads as not said, as an old
        // registration: it failed the listing until 7 Dec.
        type Names = Option<Json<serde_json::Value>>;
        let rows: Vec<(
            String,
            String,
            i64,
            DateTime<Utc>,
            DateTime<Utc>,
            Names,
            Names,
        )> = sqlx::query_as(sql!("worker_list"))
            .fetch_all(&mut *self.conn().await?)
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, host, pid, started_at, heartbeat_at, queues, kinds)| WorkerRow {
                    id,
                    host,
                    pid,
                    started_at,
                    heartbeat_at,
                    queues: queues.and_then(|q| serde_json::from_value(q.0).ok()),
                    kinds: kinds.and_then(|k| serde_json::from_value(k.0).ok()),
                },
            )
            .collect())
    }

    async fn periodic_enqueue(&self, p: PeriodicEnqueueParams) -> Result<Option<InsertResult>> {
        let write = || async {
            let mut tx = self.begin().await?;
            let set: Option<(bool, bool)> = sqlx::query_as(sql!("periodic_set"))
                .bind(&p.name)
                .bind(p.slot)
                .bind(crate::store::PERIODIC_CLOCK_SLACK_MS)
                .fetch_optional(&mut *tx)
                .await?;
            let ran = match set {
                None => return Ok(None), // the slot was taken already; nothing written
                // A name seen for the first time only records its slot.
                Some((true, _)) => true,
                // A mark a clock that ran ahead left, replaced: the slot due now may have run
                // before the clock jumped.
                Some((false, true)) => {
                    sqlx::query_scalar(sql!("periodic_slot_ran"))
                        .bind(&p.name)
                        .bind(p.slot)
                        .fetch_one(&mut *tx)
                        .await?
                }
                Some((false, false)) => false,
            };
            if ran {
                tx.commit().await?;
                return Ok(None);
            }
            let out = insert_jobs_once(&mut tx, std::slice::from_ref(&p.job))
                .await?
                .pop();
            tx.commit().await?;
            Ok(out)
        };
        let parents = !p.job.depends_on.is_empty();
        insert_written_again(parents, "a periodic job's insert", write).await
    }

    async fn job_search(&self, p: JobSearchParams) -> Result<Vec<JobRow>> {
        let sql = concat!(
            "SELECT * FROM porter_jobs\n",
            include_str!("sql/job_filter.sql"),
            "\nORDER BY id DESC LIMIT $7"
        );
        Ok(bind_filter(sqlx::query(sql), &p)
            .bind(i64::from(p.limit))
            .try_map(job_from_row)
            .fetch_all(&mut *self.conn().await?)
            .await?)
    }

    async fn job_search_ids(&self, p: JobSearchParams) -> Result<Vec<i64>> {
        // $8: rows whose last writer (xmin, a 32-bit transaction id) was in progress when a
        // bulk action's count was taken are passed by (job_count_matching).
        let sql = concat!(
            "SELECT id FROM porter_jobs\n",
            include_str!("sql/job_filter.sql"),
            "\n  AND NOT (xmin::text::bigint = ANY($8::bigint[]))",
            "\nORDER BY id DESC LIMIT $7"
        );
        let rows: Vec<(i64,)> = bind_filter_as(sqlx::query_as(sql), &p)
            .bind(i64::from(p.limit))
            .bind(&p.not_written_by)
            .fetch_all(&mut *self.conn().await?)
            .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    async fn job_count_matching(&self, filter: JobFilter) -> Result<MatchCount> {
        // With the count, the transactions in progress in the snapshot it was counted in (as
        // 32-bit ids, as xmin shows them): a job one of them inserted may have an id below the
        // highest counted and commit later (see BulkFence::in_progress).
        let sql = concat!(
            "SELECT count(*), max(id),\n",
            "       (SELECT coalesce(array_agg((x::text::numeric % 4294967296)::bigint), '{}')\n",
            "        FROM pg_snapshot_xip(pg_current_snapshot()) AS x)\n",
            "FROM porter_jobs\n",
            include_str!("sql/job_filter.sql")
        );
        let p = JobSearchParams {
            filter,
            ..Default::default()
        };
        let (count, max_id, in_progress): (i64, Option<i64>, Vec<i64>) =
            bind_filter_as(sqlx::query_as(sql), &p)
                .fetch_one(&mut *self.conn().await?)
                .await?;
        Ok(MatchCount {
            count,
            max_id,
            in_progress,
        })
    }

    async fn job_retry_many(&self, ids: Vec<i64>, states: Vec<JobState>) -> Result<Vec<JobChange>> {
        let states = state_names(&states);
        // Locks the listed jobs' ended parents, the listed jobs and their waiting children in
        // one pass in id order (job_retry_many_lock.sql), as a bulk cancel or delete takes
        // theirs; a child inserted while the lock statement waits is locked later, by the
        // retry's trigger, so the two can still deadlock, and the retry is written again then.
        // A job's unique key taken by an insert committed while the retry waited for it: the
        // batch is written again, and leaves that job (until 6 Dec the batch failed with the
        // unique index's violation, where SQLite leaves such a job as it is).
        again_while("a bulk retry", deadlocked_or_key_taken, || async {
            let mut tx = self.begin().await?;
            let (_, judged, ended, parents): (i64, Vec<i64>, Vec<i64>, Vec<i64>) =
                sqlx::query_as(sql!("job_retry_many_lock"))
                    .bind(&ids)
                    .bind(false)
                    .fetch_one(&mut *tx)
                    .await?;
            let rows: Vec<(i64, String, String, Option<String>)> =
                sqlx::query_as(sql!("job_retry_many"))
                    .bind(&ids)
                    .bind(&states)
                    .bind(&judged)
                    .bind(&parents)
                    .bind(&ended)
                    .fetch_all(&mut *tx)
                    .await?;
            let changes = job_changes(rows)?;
            if !changes.is_empty() {
                notify_queues(&mut tx, changes.iter().map(|c| c.queue.clone()).collect()).await?;
                sqlx::query(sql!("job_retry_notify_children"))
                    .bind(changes.iter().map(|c| c.id).collect::<Vec<i64>>())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(changes)
        })
        .await
    }

    async fn job_cancel_many(
        &self,
        ids: Vec<i64>,
        states: Vec<JobState>,
    ) -> Result<Vec<JobChange>> {
        // Locks the jobs in id order, and then their waiting descendants; a completion of a
        // running one of them and of an older parent of one of those takes the children
        // last, so the two can deadlock.
        let states = state_names(&states);
        again_if_deadlocked("a bulk cancel", || async {
            let mut tx = self.begin().await?;
            let rows: Vec<(i64, String, String, Option<String>)> =
                sqlx::query_as(sql!("job_cancel_many"))
                    .bind(&ids)
                    .bind(&states)
                    .fetch_all(&mut *tx)
                    .await?;
            let changes = job_changes(rows)?;
            notify_cancel_requests(&mut tx, &changes).await?;
            tx.commit().await?;
            Ok(changes)
        })
        .await
    }

    async fn job_delete_many(&self, ids: Vec<i64>, states: Vec<JobState>) -> Result<u64> {
        // Two statements: the rows are locked first, then judged by a snapshot taken after
        // the locks (see job_delete_many.sql).
        // Written again when it deadlocks, as a bulk cancel or retry is: a bulk retry's
        // trigger locks a child inserted while the retry's lock statement waited after rows
        // above it, which this delete may hold while it waits for one of the retry's.
        let states = state_names(&states);
        again_if_deadlocked("a bulk delete", || async {
            let mut tx = self.begin().await?;
            let picked: Vec<i64> = sqlx::query_scalar(sql!("job_delete_many_pick"))
                .bind(&ids)
                .bind(&states)
                .fetch_all(&mut *tx)
                .await?;
            let deleted = sqlx::query(sql!("job_delete_many"))
                .bind(picked)
                .bind(&states)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok(deleted)
        })
        .await
    }

    async fn job_running_by_worker(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(sql!("job_running_by_worker"))
            .fetch_all(&mut *self.conn().await?)
            .await?)
    }

    async fn periodic_list(&self) -> Result<Vec<PeriodicRow>> {
        let rows: Vec<(String, i64, Option<i64>)> = sqlx::query_as(sql!("periodic_list"))
            .fetch_all(&mut *self.conn().await?)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(name, last_slot, last_job_id)| PeriodicRow {
                name,
                last_slot,
                last_job_id,
            })
            .collect())
    }

    async fn job_throughput(&self, since: DateTime<Utc>) -> Result<Vec<ThroughputRow>> {
        let rows: Vec<(DateTime<Utc>, i64, i64)> = sqlx::query_as(sql!("job_throughput"))
            .bind(since)
            .fetch_all(&mut *self.conn().await?)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(minute, completed, discarded)| ThroughputRow {
                minute,
                completed,
                discarded,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests;
