//! The library's one error type.

use std::time::Duration;

/// Everything the library can fail with. Variants say what went wrong in the job-queue
/// vocabulary; driver errors are mapped once per backend (see `store::sqlite::map_err` and
/// `store::postgres::map_err`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input that can never be accepted: a bad queue name, kind, priority, JSON, URL...
    #[error("invalid {what}: {message}")]
    Invalid {
        /// Which input was refused (`queue`, `kind`, `priority`, ...).
        what: &'static str,
        /// Why, in words a user can act on.
        message: String,
    },
    /// A job, queue or record that does not exist.
    #[error("{what} {id} not found")]
    NotFound {
        /// What was looked up (`job`, `tablo`, ...).
        what: &'static str,
        /// The id that was asked for.
        id: String,
    },
    /// The request conflicts with the job's current state (for example retrying a running job).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database schema is newer than this binary knows.
    #[error("the database's migration set {set:?} is at version {found}, newer than this porter (knows up to {known}); upgrade porter")]
    DatabaseTooNew {
        /// The migration set (`porter` for porter's own schema, `tablo` for the app's, or an
        /// application's).
        set: &'static str,
        /// Version found in the database.
        found: i64,
        /// Latest version this binary carries.
        known: i64,
    },
    /// The database could not be reached or refused the connection.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Any other database error, with the driver's message.
    #[error("database error: {0}")]
    Database(String),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// A worker-side write was fenced off: the job is no longer running under this attempt
    /// and worker, so the write changed nothing.
    #[error("job {id} is no longer running as attempt {attempt} of this worker; the write changed nothing")]
    Fenced {
        /// The job's id.
        id: i64,
        /// The attempt the stale writer held.
        attempt: i32,
    },
    /// Object storage failed.
    #[error("object store: {0}")]
    ObjectStore(String),
    /// An operation did not finish in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The store is shutting down and no longer takes work (or a copy was told to stop).
    #[error("the store is closed")]
    Closed,
    /// One of a worker runtime's own tasks (a queue's producer, the heartbeat, the reconcile,
    /// the cancel watcher, a maintenance service) panicked: the runtime shut down rather than
    /// run on without it.
    #[error("a worker task panicked: {0}")]
    Panicked(String),
    /// The shutdown stopped jobs that were still there a moment later: they block their
    /// threads (no await to stop at). They were left `running` under the worker, which stayed
    /// registered, for other workers' rescuers once its lease has passed. End the process at
    /// once (`std::process::exit`): they run until it ends, and dropping a tokio runtime waits
    /// for them, past the lease, when rescuers may start them elsewhere beside these runs.
    #[error("{0} jobs still ran after the shutdown stopped them (they block their threads, with no await to stop at); left running under this worker, for other workers' rescuers once its lease has passed")]
    StillRunning(u64),
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(what: &'static str, message: impl Into<String>) -> Self {
        Error::Invalid {
            what,
            message: message.into(),
        }
    }

    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(what: &'static str, id: impl ToString) -> Self {
        Error::NotFound {
            what,
            id: id.to_string(),
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
