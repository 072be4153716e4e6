//! Jobs: their states, rows, insert options and the typed `JobArgs` trait.
//!
//! # States
//! A job follows River's state machine:
//!
//! ```text
//!  insert ──► available ──claim──► running ──ok──► completed
//!     │           ▲                   │ error: attempt < max_attempts
//!     ▼           │ due               ├──────────────► retryable ──due──► available
//!  scheduled ─────┘                   │ error: attempts used up, or discard
//!     ▲                               ├──────────────► discarded
//!     └──────────── snooze ───────────┤ cancel
//!                                     └──────────────► cancelled
//! ```
//! `completed`, `cancelled` and `discarded` are final; a final job can be retried by hand,
//! which makes it `available` again with its history kept.
//!
//! A job that waits for other jobs starts `pending` (never claimed) instead of `available`:
//!
//! ```text
//!  insert ──► pending ──what it waits for ended──► available (scheduled when due later)
//!                │ a parent discarded or cancelled (not after_any), or a user's cancel
//!                └──────────────────────────────► cancelled
//! ```
//! * **Sequences** ([`InsertOpts::sequence_key`]): while a sequence has an unfinished job
//!   that is not pending (its active job, at most one), a new job of it is `pending`; when the
//!   active job is finalized (completed, cancelled or discarded), the oldest pending job of the
//!   sequence becomes due, in the same transaction. A job waiting to retry (`retryable`),
//!   snoozed or released stays the active job: it holds its sequence.
//! * **Dependencies** ([`InsertOpts::depends_on`]): a job is `pending` until every parent has
//!   completed (ended at all, with [`InsertOpts::after_any`]); it becomes due in the transaction
//!   that ends its last parent. A parent ending discarded or cancelled cancels it (the reason,
//!   in its errors, names the parent), and that cancel goes on down its own dependents.
//!
//! Promotions happen in the database (a trigger on `porter_jobs`, one per backend), whatever
//! path ends the job: a completion, a failure, a cancel, a rescue.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Default number of attempts before a job is discarded (River's default).
pub const DEFAULT_MAX_ATTEMPTS: i32 = 25;
/// Default queue name.
pub const DEFAULT_QUEUE: &str = "default";
/// Default priority (1 is the highest, 4 the lowest).
pub const DEFAULT_PRIORITY: i16 = 1;

/// A job's place in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Ready to be claimed now.
    Available,
    /// Waiting for its scheduled time (inserted for later, or snoozed).
    Scheduled,
    /// Claimed by a worker, which holds it under a lease.
    Running,
    /// Failed; will be available again once its backoff has passed.
    Retryable,
    /// Finished successfully (final).
    Completed,
    /// Cancelled by a user or by the job itself (final).
    Cancelled,
    /// Failed for good: attempts used up, or discarded on purpose (final).
    Discarded,
    /// Waiting for other jobs (its sequence's turn, or its parents) before it can be due.
    Pending,
}

impl JobState {
    /// Every state, in life-cycle order.
    pub const ALL: [JobState; 8] = [
        JobState::Available,
        JobState::Scheduled,
        JobState::Running,
        JobState::Retryable,
        JobState::Completed,
        JobState::Cancelled,
        JobState::Discarded,
        JobState::Pending,
    ];

    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Available => "available",
            JobState::Scheduled => "scheduled",
            JobState::Running => "running",
            JobState::Retryable => "retryable",
            JobState::Completed => "completed",
            JobState::Cancelled => "cancelled",
            JobState::Discarded => "discarded",
            JobState::Pending => "pending",
        }
    }

    /// Whether the state is final (completed, cancelled, discarded).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Cancelled | JobState::Discarded
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        JobState::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| {
            Error::invalid(
                "state",
                format!(
                    "{s:?} is not a job state (one of available, scheduled, running, retryable, completed, cancelled, discarded, pending)"
                ),
            )
        })
    }
}

/// One entry of a job's error history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptError {
    /// The attempt that failed.
    pub attempt: i32,
    /// When it failed (database clock).
    pub at: DateTime<Utc>,
    /// The error message.
    pub error: String,
    /// A backtrace or panic location, when one was captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// Set on the entry of an attempt given back before its handler was called (claimed ahead
    /// of a free slot): such an attempt did not start the job. A job whose every attempt is
    /// such has not started.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unstarted: bool,
}

/// The metadata key that records a user's request to cancel a running job (River's way, as
/// `cancel_attempted_at` there): the time of the request, as RFC 3339 text in UTC. The job stays
/// `running`, with its unique key held, until its worker has stopped it; reserved, so an insert
/// that sets it is refused.
pub const CANCEL_REQUESTED_AT: &str = "cancel_requested_at";

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRow {
    /// Ascending 64-bit id.
    pub id: i64,
    /// What the job does; selects the worker.
    pub kind: String,
    /// The queue it runs on.
    pub queue: String,
    /// The job's arguments.
    pub args: serde_json::Value,
    /// Current state.
    pub state: JobState,
    /// 1 (highest) to 4.
    pub priority: i16,
    /// Attempts started so far.
    pub attempt: i32,
    /// Attempts allowed before it is discarded.
    pub max_attempts: i32,
    /// One entry per failed attempt, oldest first.
    pub errors: Vec<AttemptError>,
    /// When it was inserted.
    pub created_at: DateTime<Utc>,
    /// When it is (or was) due.
    pub scheduled_at: DateTime<Utc>,
    /// When the latest attempt started.
    pub attempted_at: Option<DateTime<Utc>>,
    /// When it reached a final state.
    pub finalized_at: Option<DateTime<Utc>>,
    /// The worker that holds (or last held) it.
    pub attempted_by: Option<String>,
    /// Deduplication key, unique among unfinished jobs.
    pub unique_key: Option<String>,
    /// Free-form metadata (periodic name and slot, for example).
    pub metadata: serde_json::Value,
    /// The output its worker recorded ([`crate::Job::set_output`]), if any: the latest one,
    /// kept across attempts until overwritten. Read with one job ([`crate::Client::get`],
    /// `porter jobs show`, `GET /admin/jobs/{id}`); listings leave it out (`None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    /// The progress its worker recorded ([`crate::Job::set_progress`]), if any; read like
    /// [`JobRow::output`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<serde_json::Value>,
    /// The concurrency key its queue's per-key limits count it under, if any.
    #[serde(default)]
    pub concurrency_key: Option<String>,
    /// The sequence it runs in ([`InsertOpts::sequence_key`]), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence_key: Option<String>,
    /// What porter could not read of this row, if anything: a value another program wrote
    /// that porter's reader refuses (JSON it cannot parse, a number past an `f64`, a column of
    /// the wrong type). The unreadable columns read as placeholders (`null` JSON, priority 1,
    /// one attempt); a worker discards such a job without running it, naming this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

/// What a worker-side write must match: the job, the attempt and the worker holding it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JobFence {
    /// Job id.
    pub id: i64,
    /// The attempt the worker claimed.
    pub attempt: i32,
    /// The worker that claimed it.
    pub worker_id: String,
}

impl JobRow {
    /// The fence a worker-side write must present: the job's id, the attempt and the worker
    /// that claimed it.
    pub fn fence(&self) -> JobFence {
        JobFence {
            id: self.id,
            attempt: self.attempt,
            worker_id: self.attempted_by.clone().unwrap_or_default(),
        }
    }

    /// The latest error, if any.
    pub fn last_error(&self) -> Option<&AttemptError> {
        self.errors.last()
    }

    /// Whether a user asked to cancel this job while it ran (see [`CANCEL_REQUESTED_AT`]).
    pub fn cancel_requested(&self) -> bool {
        // (A JSON `null` there is none, as the databases read it: SQLite's json_extract, and
        // PostgreSQL's `->>`.)
        self.metadata
            .get(CANCEL_REQUESTED_AT)
            .is_some_and(|at| !at.is_null())
    }
}

/// Typed job arguments. The kind names the worker that runs them.
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct SendEmail { to: String }
/// impl porter::JobArgs for SendEmail { const KIND: &'static str = "send_email"; }
/// ```
pub trait JobArgs: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The job kind, `^[a-z0-9_.-]{1,64}$`.
    const KIND: &'static str;

    /// Insert options this kind uses unless the caller gives others.
    fn insert_opts(&self) -> InsertOpts {
        InsertOpts::default()
    }
}

/// Options for inserting a job. Unset fields take the defaults (queue `default`, priority 1,
/// 25 attempts, due now).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InsertOpts {
    /// Queue name.
    pub queue: Option<String>,
    /// Priority, 1 (highest) to 4.
    pub priority: Option<i16>,
    /// Attempts before discard, at least 1.
    pub max_attempts: Option<i32>,
    /// Run at this time (or later).
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Run after this delay, counted on the database clock.
    #[serde(skip)]
    pub schedule_in: Option<Duration>,
    /// Deduplicate against unfinished jobs with the same key.
    pub unique_key: Option<String>,
    /// Free-form metadata.
    pub metadata: Option<serde_json::Value>,
    /// The concurrency key (1 to 255 bytes, no NUL): its queue's per-key limits
    /// (`porter queues limit QUEUE --per-key N`, `--rate-per-key N/DURATION`) count the job
    /// under it. Jobs without one are held only by the queue's global limits.
    #[serde(default)]
    pub concurrency_key: Option<String>,
    /// Run in this sequence: jobs with one sequence key run one at a time, in insertion order;
    /// the next starts only once the previous is finalized (see the [module docs](self)).
    /// 1 to 255 bytes, no NUL.
    #[serde(default)]
    pub sequence_key: Option<String>,
    /// Wait for these jobs (its parents, which must exist): the job is claimable only once
    /// every parent has completed; a parent ending discarded or cancelled cancels it, unless
    /// `after_any`. Not with a `sequence_key`.
    #[serde(default)]
    pub depends_on: Vec<i64>,
    /// With `depends_on`: run once every parent has ended, however it ended.
    #[serde(default)]
    pub after_any: bool,
}

impl InsertOpts {
    /// These options over `base` (the options an args type gives, say), field by field: each
    /// one set here wins, each left unset keeps `base`'s. The due time (`scheduled_at` or
    /// `schedule_in`) given here replaces `base`'s, either way. Parents given here replace
    /// `base`'s, with their `after_any`.
    pub fn over(self, base: InsertOpts) -> InsertOpts {
        let own_parents = !self.depends_on.is_empty();
        // The due time is one option given two ways: either of these wins over both of
        // `base`'s (kept side by side, `base`'s `scheduled_at` beat a `schedule_in` here).
        let (scheduled_at, schedule_in) =
            if self.scheduled_at.is_some() || self.schedule_in.is_some() {
                (self.scheduled_at, self.schedule_in)
            } else {
                (base.scheduled_at, base.schedule_in)
            };
        InsertOpts {
            queue: self.queue.or(base.queue),
            priority: self.priority.or(base.priority),
            max_attempts: self.max_attempts.or(base.max_attempts),
            scheduled_at,
            schedule_in,
            unique_key: self.unique_key.or(base.unique_key),
            metadata: self.metadata.or(base.metadata),
            concurrency_key: self.concurrency_key.or(base.concurrency_key),
            sequence_key: self.sequence_key.or(base.sequence_key),
            after_any: if own_parents {
                self.after_any
            } else {
                base.after_any
            },
            depends_on: if own_parents {
                self.depends_on
            } else {
                base.depends_on
            },
        }
    }
}

/// Checks a queue name or a kind against `^[a-z0-9_.-]{1,64}$`.
pub fn validate_name(what: &'static str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            what,
            format!("{name:?} must match ^[a-z0-9_.-]{{1,64}}$ (lower-case letters, digits, '_', '.', '-')"),
        ))
    }
}

/// The longest delay [`default_backoff`] gives.
pub const MAX_DEFAULT_BACKOFF: Duration = Duration::from_secs(30 * 86_400);

/// River's default retry delay: attempt^4 seconds, with ±10 % jitter, at most
/// [`MAX_DEFAULT_BACKOFF`] (attempt 41 on; without a cap the delay outgrows any time the
/// databases can store).
pub fn default_backoff(attempt: i32) -> Duration {
    let cap = MAX_DEFAULT_BACKOFF.as_secs_f64();
    let base = (attempt.max(1) as f64).powi(4).min(cap);
    let jitter = 1.0 + (fastrand::f64() * 0.2 - 0.1);
    Duration::from_secs_f64((base * jitter).min(cap))
}

/// A value as JSON, refusing NaN and the infinities, which JSON cannot hold: serde_json writes
/// them as `null` without a word (`{"ratio": NaN}` was stored as `{"ratio": null}`, and the
/// job then failed to decode its own args at every attempt; review of 6 Dec). The error says
/// which; for the library's typed inserts, outputs and progress.
pub(crate) fn to_json<T: Serialize + ?Sized>(
    value: &T,
) -> std::result::Result<serde_json::Value, String> {
    // Another serializer's error (a map key that is not a string, a failing
    // `serialize_with`) is serde_json's to report, with its own words.
    if let Err(finite::NotFinite::Float) = value.serialize(finite::Finite) {
        return Err(
            "holds NaN or an infinity, which JSON cannot hold (serde_json would write null)".into(),
        );
    }
    serde_json::to_value(value).map_err(|e| e.to_string())
}

/// A serializer that only looks for floats that are not finite (NaN, the infinities), failing
/// on the first; everything else it passes over.
mod finite {
    use serde::ser::{self, Serialize};

    pub(super) struct Finite;

    #[derive(Debug)]
    pub(super) enum NotFinite {
        /// A float that is not finite.
        Float,
        /// The value's own `Serialize` failed (review of 6 Dec: reported as a float too).
        Other,
    }

    impl std::fmt::Display for NotFinite {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(match self {
                NotFinite::Float => "a float that is not finite",
                NotFinite::Other => "the value's own serializer failed",
            })
        }
    }

    impl std::error::Error for NotFinite {}

    impl ser::Error for NotFinite {
        fn custom<T: std::fmt::Display>(_: T) -> Self {
            NotFinite::Other
        }
    }

    type R = Result<(), NotFinite>;

    macro_rules! pass {
        ($($name:ident: $t:ty),*) => {$(
            fn $name(self, _: $t) -> R { Ok(()) }
        )*};
    }

    impl ser::Serializer for Finite {
        type Ok = ();
        type Error = NotFinite;
        type SerializeSeq = Finite;
        type SerializeTuple = Finite;
        type SerializeTupleStruct = Finite;
        type SerializeTupleVariant = Finite;
        type SerializeMap = Finite;
        type SerializeStruct = Finite;
        type SerializeStructVariant = Finite;

        pass!(serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
              serialize_i64: i64, serialize_i128: i128, serialize_u8: u8, serialize_u16: u16,
              serialize_u32: u32, serialize_u64: u64, serialize_u128: u128, serialize_char: char,
              serialize_str: &str, serialize_bytes: &[u8]);

        fn serialize_f32(self, v: f32) -> R {
            if v.is_finite() {
                Ok(())
            } else {
                Err(NotFinite::Float)
            }
        }
        fn serialize_f64(self, v: f64) -> R {
            if v.is_finite() {
                Ok(())
            } else {
                Err(NotFinite::Float)
            }
        }
        fn serialize_none(self) -> R {
            Ok(())
        }
        fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> R {
            v.serialize(self)
        }
        fn serialize_unit(self) -> R {
            Ok(())
        }
        fn serialize_unit_struct(self, _: &'static str) -> R {
            Ok(())
        }
        fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> R {
            Ok(())
        }
        fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> R {
            v.serialize(self)
        }
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            v: &T,
        ) -> R {
            v.serialize(self)
        }
        fn serialize_seq(self, _: Option<usize>) -> Result<Finite, NotFinite> {
            Ok(Finite)
        }
        fn serialize_tuple(self, _: usize) -> Result<Finite, NotFinite> {
            Ok(Finite)
        }
        fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Finite, NotFinite> {
            Ok(Finite)
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Finite, NotFinite> {
            Ok(Finite)
        }
        fn serialize_map(self, _: Option<usize>) -> Result<Finite, NotFinite> {
            Ok(Finite)
        }
        fn serialize_struct(self, _: &'static str, _: usize) -> Result<Finite, NotFinite> {
            Ok(Finite)
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Finite, NotFinite> {
            Ok(Finite)
        }
    }

    /// The sequences' and tuples' parts, each element looked at.
    macro_rules! elements {
        ($($tr:ident::$method:ident),*) => {$(
            impl ser::$tr for Finite {
                type Ok = ();
                type Error = NotFinite;
                fn $method<T: Serialize + ?Sized>(&mut self, v: &T) -> R {
                    v.serialize(Finite)
                }
                fn end(self) -> R {
                    Ok(())
                }
            }
        )*};
    }
    elements!(
        SerializeSeq::serialize_element,
        SerializeTuple::serialize_element,
        SerializeTupleStruct::serialize_field,
        SerializeTupleVariant::serialize_field
    );

    impl ser::SerializeMap for Finite {
        type Ok = ();
        type Error = NotFinite;
        fn serialize_key<T: Serialize + ?Sized>(&mut self, _: &T) -> R {
            // Keys are strings in JSON (a float key is serde_json's to refuse).
            Ok(())
        }
        fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> R {
            v.serialize(Finite)
        }
        fn end(self) -> R {
            Ok(())
        }
    }

    /// The structs' parts, each field looked at.
    macro_rules! fields {
        ($($tr:ident),*) => {$(
            impl ser::$tr for Finite {
                type Ok = ();
                type Error = NotFinite;
                fn serialize_field<T: Serialize + ?Sized>(&mut self, _: &'static str, v: &T) -> R {
                    v.serialize(Finite)
                }
                fn end(self) -> R {
                    Ok(())
                }
            }
        )*};
    }
    fields!(SerializeStruct, SerializeStructVariant);
}

/// Args types the unit tests share.
#[cfg(test)]
pub(crate) mod test_args {
    use super::{InsertOpts, JobArgs};

    /// A type that asks for one attempt in its own queue, `emails`.
    #[derive(serde::Serialize, serde::Deserialize)]
    pub(crate) struct Mail {}

    impl JobArgs for Mail {
        const KIND: &'static str = "mail";
        fn insert_opts(&self) -> InsertOpts {
            InsertOpts {
                queue: Some("emails".into()),
                max_attempts: Some(1),
                ..Default::default()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// A value whose own `Serialize` fails is refused with its own words; it was reported as
    /// holding NaN or an infinity (review of 6 Dec). NaN still is.
    #[test]
    fn a_failing_serializer_is_reported_as_itself_not_as_a_float() {
        struct Fails;
        impl serde::Serialize for Fails {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("the lock is poisoned"))
            }
        }
        let err = super::to_json(&Fails).unwrap_err();
        assert!(
            err.contains("the lock is poisoned") && !err.contains("NaN"),
            "{err}"
        );
        let err = super::to_json(&[1.0, f64::NAN]).unwrap_err();
        assert!(err.contains("NaN"), "{err}");
    }
}
