//! What the operator's pages need from the queue beyond one job at a time: jobs found by a
//! filter (args search included), bulk retry / cancel / delete of what a filter matches, the
//! running jobs per worker, the periodic schedules' last slots and jobs, and throughput per
//! minute. Types of the [`Driver`](super::Driver) methods of the same names; the checks and
//! the batching live once in [`Store`](super::Store).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::job::{validate_name, JobState};

/// Longest args search text.
pub const MAX_ARGS_SEARCH: usize = 200;
/// Jobs a bulk action changes per transaction.
pub const BULK_BATCH: u32 = 500;
/// Most jobs one bulk action changes; the newest first (submit again for the rest).
pub const BULK_MAX: u64 = 50_000;

/// Which jobs: every field narrows, `None` / empty matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFilter {
    /// Any of these states (empty: every state).
    pub states: Vec<JobState>,
    /// This kind.
    pub kind: Option<String>,
    /// This queue.
    pub queue: Option<String>,
    /// Jobs whose args, as JSON text, contain this text (case-sensitive). The text is the
    /// stored JSON: PostgreSQL's `jsonb` prints a space after `:` and `,`, SQLite keeps
    /// the args as inserted, so search for a value (`alice@example.com`), not for JSON syntax.
    pub args_contains: Option<String>,
}

impl JobFilter {
    /// Checks the names and the search text: a clear error for anything a store would refuse.
    pub fn check(&self) -> Result<()> {
        if let Some(kind) = &self.kind {
            validate_name("kind", kind)?;
        }
        if let Some(queue) = &self.queue {
            validate_name("queue", queue)?;
        }
        if let Some(text) = &self.args_contains {
            if text.is_empty() || text.chars().count() > MAX_ARGS_SEARCH {
                return Err(Error::invalid(
                    "args search",
                    format!("give 1 to {MAX_ARGS_SEARCH} characters to look for in args"),
                ));
            }
            // Postgres text cannot hold a NUL (and args never do): refused on both backends.
            if text.contains('\0') {
                return Err(Error::invalid(
                    "args search",
                    "a NUL character is not searchable",
                ));
            }
        }
        Ok(())
    }
}

/// A page of jobs a filter matches.
#[derive(Debug, Clone, Default)]
pub struct JobSearchParams {
    /// Which jobs.
    pub filter: JobFilter,
    /// Only ids below this one (keyset pagination, newest first).
    pub before_id: Option<i64>,
    /// Only ids up to this one (a bulk action's fence: jobs inserted after its confirmation
    /// are not touched).
    pub max_id: Option<i64>,
    /// Not rows last written by these PostgreSQL transactions ([`BulkFence::in_progress`]).
    pub not_written_by: Vec<i64>,
    /// Most rows.
    pub limit: u32,
}

/// How many jobs a filter matches, and the highest id among them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MatchCount {
    /// Matching jobs.
    pub count: i64,
    /// The highest matching id (`None` when nothing matches).
    pub max_id: Option<i64>,
    /// The PostgreSQL transactions in progress when the count was taken (see
    /// [`BulkFence::in_progress`]); empty on SQLite.
    pub in_progress: Vec<i64>,
}

impl MatchCount {
    /// The fence of a bulk action on what was counted; `None` when nothing matched.
    pub fn fence(&self) -> Option<BulkFence> {
        Some(BulkFence {
            max_id: self.max_id?,
            in_progress: self.in_progress.clone(),
            counted: Some(self.count.max(0) as u64),
        })
    }
}

/// What a bulk action may touch: the jobs its confirmation counted ([`MatchCount::fence`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkFence {
    /// The highest id counted: jobs inserted since have higher ids.
    pub max_id: i64,
    /// PostgreSQL only: the transactions (their 32-bit ids) in progress when the count was
    /// taken. PostgreSQL hands out a job's id at its insert and shows the job at its commit, so
    /// a job of such a transaction may have an id below `max_id` and appear after the count;
    /// the rows they wrote last are passed by (`xmin`). Not recognised: rows a savepoint of
    /// theirs wrote (a subtransaction has an id of its own) and such rows once written again;
    /// and a counted row one of them updated is passed by too. Empty on SQLite, where writes
    /// take turns.
    pub in_progress: Vec<i64>,
    /// How many jobs the confirmation counted: when more match within the fence (jobs that
    /// committed or came to match since, which the fence cannot tell apart from the counted
    /// ones), the action is refused, nothing changed. `None`: not checked. Not checked above
    /// [`BULK_MAX`] either, where an action takes the newest [`BULK_MAX`] anyway.
    pub counted: Option<u64>,
}

impl From<i64> for BulkFence {
    /// Every job up to `max_id`.
    fn from(max_id: i64) -> Self {
        BulkFence {
            max_id,
            in_progress: Vec::new(),
            counted: None,
        }
    }
}

/// A bulk action on what a filter matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BulkAction {
    /// Retry every matching job that is not running.
    Retry,
    /// Cancel every matching unfinished job (a running one through the usual cancel request).
    Cancel,
    /// Delete every matching job that is not running.
    Delete,
}

impl BulkAction {
    /// The action's name.
    pub fn as_str(self) -> &'static str {
        match self {
            BulkAction::Retry => "retry",
            BulkAction::Cancel => "cancel",
            BulkAction::Delete => "delete",
        }
    }
}

impl std::str::FromStr for BulkAction {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "retry" => Ok(BulkAction::Retry),
            "cancel" => Ok(BulkAction::Cancel),
            "delete" => Ok(BulkAction::Delete),
            other => Err(Error::invalid(
                "bulk action",
                format!("{other:?} (use retry, cancel or delete)"),
            )),
        }
    }
}

/// What a bulk action did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BulkOutcome {
    /// Jobs the filter matched (up to the fence and [`BULK_MAX`]).
    pub matched: u64,
    /// Jobs changed (retried, cancelled or asked to stop, deleted).
    pub changed: u64,
    /// Of the cancelled ones, running jobs whose worker was asked to stop them.
    pub cancel_requested: u64,
    /// Whether [`BULK_MAX`] stopped it before the end (the older matching jobs are left).
    pub capped: bool,
}

/// A bulk action that an error stopped part-way. Each batch commits on its own, so the
/// batches written before the error stay written: `done.changed` counts what they changed.
/// `done.matched` counts the jobs found before the error, written or not (a retry finds all
/// its jobs before its first write).
#[derive(Debug, thiserror::Error)]
#[error("{error} (after {} jobs were changed)", done.changed)]
pub struct BulkError {
    /// What the batches committed before the error did.
    pub done: BulkOutcome,
    /// What stopped it.
    #[source]
    pub error: Error,
}

impl From<BulkError> for Error {
    /// The error that stopped the action; what it did before is lost (see
    /// [`BulkError::done`]).
    fn from(e: BulkError) -> Error {
        e.error
    }
}

/// A job a bulk write changed, as far as the store needs to tell others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobChange {
    /// The job.
    pub id: i64,
    /// Its queue (whose producers to wake).
    pub queue: String,
    /// Its state after the write (`running` for a cancel request).
    pub state: JobState,
    /// The worker running it, for a cancel request.
    pub attempted_by: Option<String>,
}

/// A periodic schedule's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeriodicRow {
    /// The schedule's name.
    pub name: String,
    /// The last slot enqueued (Unix ms).
    pub last_slot: i64,
    /// The job of that slot, while it is kept (`None` once deleted by retention, or for a
    /// slot that was only recorded).
    pub last_job_id: Option<i64>,
}

/// Jobs finished in one minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ThroughputRow {
    /// The minute (its start).
    pub minute: DateTime<Utc>,
    /// Jobs completed in it.
    pub completed: i64,
    /// Jobs that failed for good (discarded) in it.
    pub discarded: i64,
}
