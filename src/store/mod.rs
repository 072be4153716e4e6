//! Storage: one seam, [`Driver`], between the queue and its database, wrapped once by
//! [`Store`].
//!
//! * A [`Driver`] (one per backend: [`sqlite`], `postgres`) runs SQL and maps rows, nothing
//!   more. It is an internal seam, documented so that the backends stay alike; it may change
//!   between releases. Methods are named noun first (`job_claim`, `queue_pause`) and take one
//!   params struct where they take more than one value.
//! * [`Store`], the one wrapper above every driver, is what [`open`] gives and what the rest of
//!   porter calls. It decides what results mean, once for both backends: input checks, fence
//!   outcomes ([`Error::Fenced`]), conflict or not found after a user's
//!   write matched nothing, completions mapped back to their fences, claimed jobs in claim
//!   order, this process's wake-ups, and per-operation counts ([`Store::op_stats`]). Every
//!   method means the same on SQLite and on PostgreSQL, and `tests/conformance/` proves it by
//!   running one suite against both.
//!
//! Worker-side writes (`job_complete_many`, `job_fail`, `job_snooze`, `job_release`,
//! `job_cancel_running`) are *fenced*: they only change a row whose state is `running` with the attempt and worker
//! named in the [`JobFence`]. A stale worker's write changes nothing and is reported as such.
//!
//! A user's cancel of a running job is a request (see [`Store::job_cancel`]): a failure,
//! snooze, release or rescue of such a job ends it `cancelled`; a completion still completes it.

pub mod admin;
pub mod batch;
pub mod bench;
pub mod clock;
pub mod copy;
mod driver;
pub mod limits;
pub mod migrations;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod sqlite;
pub mod workflow;

mod wake;
pub mod watch;
mod wrapper;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::job::{
    validate_name, InsertOpts, JobRow, JobState, DEFAULT_MAX_ATTEMPTS, DEFAULT_PRIORITY,
    DEFAULT_QUEUE,
};

// The fence is the job's (a row knows its own fence); the seam's methods take it.
pub use crate::job::JobFence;
pub use admin::{
    BulkAction, BulkError, BulkFence, BulkOutcome, JobChange, JobFilter, JobSearchParams,
    MatchCount, PeriodicRow, ThroughputRow,
};
pub use batch::{BatchInsertParams, BatchInserted, BatchRow};
pub use driver::Driver;
pub use limits::{QueueKeyUsage, QueueLimitParams, QueueLimits, Rate};
pub use wake::{Wakeup, WakeupSubscription};
pub use workflow::{
    StepPage, StepParents, WorkflowInsertParams, WorkflowInserted, WorkflowParts, WorkflowRow,
};
pub use wrapper::{OpStats, Store};

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// One SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

/// A validated job ready to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct JobInsertParams {
    /// Job kind.
    pub kind: String,
    /// Queue name.
    pub queue: String,
    /// Arguments (any JSON value; objects by convention).
    pub args: serde_json::Value,
    /// Priority 1..=4.
    pub priority: i16,
    /// Attempts allowed, at least 1.
    pub max_attempts: i32,
    /// Absolute due time, if any.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Delay from the database's now, if any (ignored when `scheduled_at` is set).
    pub schedule_in: Option<Duration>,
    /// Deduplication key.
    pub unique_key: Option<String>,
    /// Metadata object.
    pub metadata: serde_json::Value,
    /// Concurrency key (see [`InsertOpts::concurrency_key`]).
    pub concurrency_key: Option<String>,
    /// The sequence it runs in (see [`InsertOpts::sequence_key`]).
    pub sequence_key: Option<String>,
    /// Its parents, without repeats (see [`InsertOpts::depends_on`]).
    pub depends_on: Vec<i64>,
    /// Run once every parent ended, however (see [`InsertOpts::after_any`]).
    pub after_any: bool,
}

impl JobInsertParams {
    /// Validates a kind, args and options into insert params. Nothing is written.
    pub fn new(kind: &str, args: serde_json::Value, opts: InsertOpts) -> Result<Self> {
        let mut depends_on = opts.depends_on;
        if first_repeat(&depends_on).is_some() {
            let mut seen = std::collections::HashSet::with_capacity(depends_on.len());
            depends_on.retain(|id| seen.insert(*id));
        }
        let params = JobInsertParams {
            kind: kind.to_string(),
            queue: opts.queue.unwrap_or_else(|| DEFAULT_QUEUE.to_string()),
            args,
            priority: opts.priority.unwrap_or(DEFAULT_PRIORITY),
            max_attempts: opts.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS),
            scheduled_at: opts.scheduled_at,
            schedule_in: opts.schedule_in,
            unique_key: opts.unique_key,
            metadata: opts.metadata.unwrap_or_else(|| serde_json::json!({})),
            concurrency_key: opts.concurrency_key,
            sequence_key: opts.sequence_key,
            depends_on,
            after_any: opts.after_any,
        };
        params.check()?;
        Ok(params)
    }

    /// Checks params as [`JobInsertParams::new`] does (its fields are public, so params may
    /// be built by hand): the stores call it before they write anything. A parent named twice
    /// is refused here (`new` drops the repeat).
    pub fn check(&self) -> Result<()> {
        // porter_enqueue (migrations-postgres/0008_porter_enqueue.sql) repeats these checks,
        // in this order and with these words, for inserts from SQL: a change here goes there
        // too, in a new migration (tests/any_language.rs compares the two).
        validate_name("kind", &self.kind)?;
        validate_name("queue", &self.queue)?;
        let priority = self.priority;
        if !(1..=4).contains(&priority) {
            return Err(Error::invalid(
                "priority",
                format!("{priority} is outside 1..4 (1 is the highest)"),
            ));
        }
        let max_attempts = self.max_attempts;
        if !(1..=MAX_ATTEMPTS).contains(&max_attempts) {
            return Err(Error::invalid(
                "max_attempts",
                format!("{max_attempts} is outside 1..{MAX_ATTEMPTS}"),
            ));
        }
        if let Some(key) = &self.unique_key {
            if key.is_empty() || key.len() > 255 {
                return Err(Error::invalid("unique_key", "must be 1 to 255 bytes"));
            }
            if key.contains('\0') {
                return Err(Error::invalid("unique_key", NUL_REFUSED));
            }
        }
        if let Some(key) = &self.concurrency_key {
            check_concurrency_key(key)?;
        }
        if let Some(key) = &self.sequence_key {
            if key.is_empty() || key.len() > 255 {
                return Err(Error::invalid("sequence_key", "must be 1 to 255 bytes"));
            }
            if key.contains('\0') {
                return Err(Error::invalid("sequence_key", NUL_REFUSED));
            }
        }
        let depends_on = &self.depends_on;
        if depends_on.len() > MAX_PARENTS {
            return Err(Error::invalid(
                "depends_on",
                format!(
                    "{} parents; a job waits for at most {MAX_PARENTS}",
                    depends_on.len()
                ),
            ));
        }
        if let Some((i, id)) = first_repeat(depends_on) {
            return Err(Error::invalid(
                "depends_on",
                format!("names {id} twice (at {i}); each parent once"),
            ));
        }
        if self.after_any && depends_on.is_empty() {
            return Err(Error::invalid(
                "after_any",
                "needs parents to wait for (depends_on, --after)",
            ));
        }
        if self.sequence_key.is_some() && !depends_on.is_empty() {
            return Err(Error::invalid(
                "sequence_key",
                "a job waits either in a sequence or for parents (depends_on), not both",
            ));
        }
        let metadata = &self.metadata;
        if !metadata.is_object() {
            return Err(Error::invalid("metadata", "must be a JSON object"));
        }
        if metadata.get(crate::job::CANCEL_REQUESTED_AT).is_some() {
            return Err(Error::invalid(
                "metadata",
                format!(
                    "{} is reserved: porter sets it when a running job is cancelled",
                    crate::job::CANCEL_REQUESTED_AT
                ),
            ));
        }
        refuse_unreadable("args", &self.args)?;
        refuse_unreadable("metadata", metadata)?;
        check_scheduled_at(self.scheduled_at)?;
        check_schedule_in(self.schedule_in)?;
        for (what, value) in [("args", &self.args), ("metadata", metadata)] {
            let size = json_size(value, MAX_ARGS_BYTES + 1);
            if size > MAX_ARGS_BYTES {
                return Err(Error::invalid(
                    what,
                    format!(
                        "are over {MAX_ARGS_BYTES} bytes (1 MiB) as JSON, the most a job carries; \
                         store large payloads elsewhere (a file, an object) and pass a reference"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Whether this job may have to wait (a sequence or parents): the stores then insert it
    /// on their slower path, which reads its sequence and parents first.
    pub fn waits(&self) -> bool {
        self.sequence_key.is_some() || !self.depends_on.is_empty()
    }

    /// How this job starts, given whether its sequence already has an unfinished job and its
    /// parents' states (every parent must be among them: a missing one is an error).
    pub fn hold(
        &self,
        sequence_busy: bool,
        parents: &std::collections::HashMap<i64, JobState>,
    ) -> Result<JobHold> {
        let mut hold = JobHold::default();
        for &id in &self.depends_on {
            let state = *parents.get(&id).ok_or_else(|| missing_parent(id))?;
            let satisfied = state == JobState::Completed || (self.after_any && state.is_final());
            if !satisfied && state.is_final() && hold.error.is_none() {
                hold.error = Some(format!("parent job {id} was {state}"));
                hold.failed_parent = Some(id);
            }
            if !satisfied {
                hold.waiting_for += 1;
            }
            hold.edges.push((id, false));
        }
        if hold.error.is_some() {
            hold.state = Some(JobState::Cancelled);
            hold.waiting_for = 0;
            for edge in &mut hold.edges {
                edge.1 = true;
            }
        } else if hold.waiting_for > 0 || (sequence_busy && self.sequence_key.is_some()) {
            hold.state = Some(JobState::Pending);
        }
        Ok(hold)
    }
}

/// Most parents one job may wait for.
pub const MAX_PARENTS: usize = 10_000;

/// How a job that may wait starts ([`JobInsertParams::hold`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobHold {
    /// `pending` (waiting), `cancelled` (a parent already failed), or `None`: as usual.
    pub state: Option<JobState>,
    /// Parents not yet ended as it needs.
    pub waiting_for: i32,
    /// Why it starts cancelled.
    pub error: Option<String>,
    /// The parent that error names.
    pub failed_parent: Option<i64>,
    /// (parent, resolved) per parent, in order: resolved only for a job that starts cancelled
    /// (it acted on its parents' ends). A waiting job's edges are all unresolved, those to
    /// parents that ended too: such a parent retried while the job waits is waited for again
    /// (migration 0036), and its next end counts.
    pub edges: Vec<(i64, bool)>,
    /// Inserted already marked as having dependents (a workflow's step that later steps of
    /// the same insert wait for), instead of being marked when they are inserted.
    pub has_dependents: bool,
    /// Inserted already tagged as this step (name) of this workflow (id).
    pub workflow: Option<(i64, String)>,
}

/// One end of a dependency, as `porter jobs show` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobLink {
    /// The other job's id.
    pub id: i64,
    /// Its kind.
    pub kind: String,
    /// Its state now.
    pub state: JobState,
    /// Whether the child runs once the parent ended however it ended.
    pub after_any: bool,
}

impl JobLink {
    /// A link from a row's columns: the other job's id, state (as stored), kind, and whether
    /// the child runs after any end.
    pub(crate) fn from_columns(
        id: i64,
        state: &str,
        kind: String,
        after_any: bool,
    ) -> Result<Self> {
        Ok(JobLink {
            id,
            kind,
            state: state.parse()?,
            after_any,
        })
    }
}

/// A job's links to other jobs: its parents (what it waits for) and children (what waits for
/// it), by id, and the batch it belongs to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobDeps {
    /// Jobs it waits (or waited) for, by id: all of them, or the first few asked for.
    pub parents: Vec<JobLink>,
    /// Jobs that wait (or waited) for it, by id: all of them, or the first few asked for.
    pub children: Vec<JobLink>,
    /// How many parents it has in all.
    #[serde(default)]
    pub parents_total: i64,
    /// How many children it has in all.
    #[serde(default)]
    pub children_total: i64,
    /// The batch it is a member or the callback of.
    #[serde(default)]
    pub batch: Option<JobBatch>,
}

impl JobDeps {
    /// One row of `job_deps.sql`: a link of `relation` (`parent` or `child`), and how many
    /// links of that relation there are in all.
    pub(crate) fn add(&mut self, relation: &str, link: JobLink, total: i64) {
        if relation == "parent" {
            self.parents.push(link);
            self.parents_total = total;
        } else {
            self.children.push(link);
            self.children_total = total;
        }
    }
}

/// The batch a job belongs to, as `porter jobs show` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobBatch {
    /// The batch's id.
    pub id: i64,
    /// Whether the job is the batch's callback rather than a member.
    pub callback: bool,
}

/// Refuses a concurrency key that is empty, longer than 255 bytes or holds a NUL character,
/// alike on both backends, before anything is written.
pub fn check_concurrency_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > 255 {
        return Err(Error::invalid("concurrency_key", "must be 1 to 255 bytes"));
    }
    if key.contains('\0') {
        return Err(Error::invalid("concurrency_key", NUL_REFUSED));
    }
    Ok(())
}

/// Largest args (and metadata) of one job, as compact JSON: 1 MiB. Bigger ones are refused
/// with [`Error::Invalid`] on both backends, before anything is written.
pub const MAX_ARGS_BYTES: usize = 1024 * 1024;

/// The most bytes of a trace (a panic's location and backtrace, a worker's own trace) kept in
/// a job's error history per attempt: 4 KiB, the top of the stack, where the cause is. A full
/// backtrace is ~20 KB, and a job may fail 25 times.
pub const MAX_TRACE_BYTES: usize = 4096;

/// The marker a cut trace ends with (within [`MAX_TRACE_BYTES`]).
pub const TRACE_CUT: &str = "\n... (trace cut at 4 KiB)";

/// The most bytes of an attempt's error (or a cancel's reason) kept in a job's error history:
/// 16 KiB. A handler's error may quote whatever it read (a response's body, a file), and a job
/// may fail 25 times.
pub const MAX_ERROR_BYTES: usize = 16 * 1024;

/// The marker a cut error ends with (within [`MAX_ERROR_BYTES`]).
pub const ERROR_CUT: &str = " ... (error cut at 16 KiB)";

/// A job's error history as read from its row. porter writes a JSON array of
/// [`AttemptError`]s; a row another program wrote may hold anything there (the README asks it
/// to leave `errors` to its default). What cannot be read becomes one entry that says so, at
/// `at` (the job's creation), instead of failing the read of the row, and with it every claim
/// of the job's queue and every listing. `raw` is the stored text, or the error reading it.
pub(crate) fn errors_read(
    value: std::result::Result<serde_json::Value, String>,
    at: DateTime<Utc>,
) -> Vec<crate::job::AttemptError> {
    let unreadable = |raw: String| {
        let mut raw = raw;
        if raw.len() > 200 {
            let mut end = 200;
            while !raw.is_char_boundary(end) {
                end -= 1;
            }
            raw.truncate(end);
            raw.push_str("...");
        }
        crate::job::AttemptError {
            attempt: 0,
            at,
            error: format!(
                "porter could not read this entry of the job's error history (written by another program?): {raw:?}"
            ),
            trace: None,
            unstarted: false,
        }
    };
    match value {
        Ok(serde_json::Value::Array(items)) => items
            .into_iter()
            .map(|item| {
                serde_json::from_value::<crate::job::AttemptError>(item.clone())
                    .unwrap_or_else(|_| unreadable(item.to_string()))
            })
            .collect(),
        Ok(other) => vec![unreadable(other.to_string())],
        Err(raw) => vec![unreadable(raw)],
    }
}

/// Cuts a trace to [`MAX_TRACE_BYTES`] at a character boundary, marked with [`TRACE_CUT`].
pub(crate) fn cap_trace(trace: String) -> String {
    history_text(trace, MAX_TRACE_BYTES, TRACE_CUT)
}

/// Whether an error is the database refusing the rows a statement wrote, which writing them
/// again will not change: a constraint or a data exception, or an application's trigger that
/// raised (SQLSTATE classes 22, 23 and P0 on PostgreSQL, a constraint or `RAISE` on SQLite).
/// Not an outage, a deadlock, a timeout or a database that is read-only, which may pass.
pub(crate) fn refusal(e: &Error) -> bool {
    match e {
        Error::Invalid { .. } | Error::Conflict(_) => true,
        Error::Database(text) => ["(SQLSTATE 22", "(SQLSTATE 23", "(SQLSTATE P0"]
            .iter()
            .any(|code| text.contains(code)),
        _ => false,
    }
}

/// Cuts an attempt's error (or a cancel's reason) to [`MAX_ERROR_BYTES`], marked with
/// [`ERROR_CUT`].
pub(crate) fn cap_error(error: String) -> String {
    history_text(error, MAX_ERROR_BYTES, ERROR_CUT)
}

/// A text for the error history, as both backends can keep it: a NUL (which PostgreSQL's
/// text refuses) becomes U+FFFD, and a text over `max` bytes is cut at a character boundary
/// and ends with `marker`.
fn history_text(text: String, max: usize, marker: &str) -> String {
    let mut text = if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    };
    if text.len() > max {
        let mut end = max - marker.len();
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(marker);
    }
    text
}

/// The size of `value` as compact JSON, counted without building the text; counting stops
/// a little past `stop_after` (the result is then only known to be above it).
pub fn json_size(value: &serde_json::Value, stop_after: usize) -> usize {
    let mut counter = Capped::new(std::io::sink(), stop_after);
    let _ = serde_json::to_writer(&mut counter, value);
    counter.written
}

/// A writer that passes what it is given on to `inner` while at most `max` bytes have come,
/// and then refuses: it ends a serialization as soon as its output is known to be too big.
pub(crate) struct Capped<W> {
    /// Where the bytes go (up to `max` of them).
    pub inner: W,
    /// Bytes given so far, the refused ones included (so past `max` once it refused).
    pub written: usize,
    max: usize,
}

impl<W> Capped<W> {
    pub(crate) fn new(inner: W, max: usize) -> Self {
        Capped {
            inner,
            written: 0,
            max,
        }
    }
}

impl<W: std::io::Write> std::io::Write for Capped<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.written += buf.len();
        if self.written > self.max {
            return Err(std::io::Error::other("over the limit"));
        }
        self.inner.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The refusal of a parent that does not exist (when the job is inserted), in both stores' and
/// porter_enqueue's words.
pub(crate) fn missing_parent(id: i64) -> Error {
    Error::invalid(
        "depends_on",
        format!("parent job {id} does not exist (parents must be inserted first)"),
    )
}

/// The first parent named again, with its index: a scan of a few, a set for many (a fan-in
/// step waits for up to [`MAX_PARENTS`]; a scan of those was 50 million comparisons).
fn first_repeat(ids: &[i64]) -> Option<(usize, i64)> {
    if ids.len() <= 16 {
        return ids
            .iter()
            .enumerate()
            .find(|(i, id)| ids[..*i].contains(id))
            .map(|(i, id)| (i, *id));
    }
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    ids.iter()
        .enumerate()
        .find(|(_, id)| !seen.insert(**id))
        .map(|(i, id)| (i, *id))
}

/// Refuses JSON text holding an integer literal beyond 64 bits (below -2^63 or above
/// 2^64 - 1): porter's reader (serde_json's) reads such an integer as the nearest float,
/// silently (`123456789012345678901234567890` became `1.2345678901234568e29`). A number with a
/// fraction or an exponent is a float, taken as floats are; digits in strings are text. For
/// the surfaces that read JSON as text (the CLI's args, the HTTP bodies); malformed text is
/// left to the parser.
pub fn refuse_wide_integers(what: &'static str, text: &[u8]) -> Result<()> {
    // Number literals are runs of their characters, outside strings, that start with a digit
    // or a minus (the `e` of `true` starts none).
    let numeric = |b: u8| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E');
    let mut outside = json_outside_strings(text).peekable();
    while let Some((start, b)) = outside.next() {
        if b != b'-' && !b.is_ascii_digit() {
            continue;
        }
        let mut end = start + 1;
        while let Some(&(at, c)) = outside.peek() {
            if at != end || !numeric(c) {
                break;
            }
            end += 1;
            outside.next();
        }
        refuse_wide_integer(what, &text[start..end])?;
    }
    Ok(())
}

/// The bytes of JSON text outside its strings (the quotes left out too), with their offsets:
/// what a look at the text's structure or its number literals reads. Malformed text is walked
/// all the same.
pub(crate) fn json_outside_strings(text: &[u8]) -> impl Iterator<Item = (usize, u8)> + '_ {
    let (mut in_string, mut escaped) = (false, false);
    text.iter().enumerate().filter_map(move |(at, &b)| {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            return None;
        }
        if b == b'"' {
            in_string = true;
            return None;
        }
        Some((at, b))
    })
}

/// One number literal of [`refuse_wide_integers`]: refused when it is an integer (no fraction
/// or exponent) beyond 64 bits.
fn refuse_wide_integer(what: &'static str, literal: &[u8]) -> Result<()> {
    if literal.iter().any(|c| matches!(c, b'.' | b'e' | b'E')) {
        return Ok(());
    }
    let literal = String::from_utf8_lossy(literal);
    if literal.parse::<i64>().is_ok() || literal.parse::<u64>().is_ok() {
        return Ok(());
    }
    let digits = literal.trim_start_matches('-').len();
    if digits == 0 || literal.matches('-').count() > 1 || literal.contains('+') {
        return Ok(()); // not a number: the parser says so
    }
    let shown: String = literal.chars().take(40).collect();
    let more = if literal.len() > 40 { "..." } else { "" };
    Err(Error::invalid(
        what,
        format!(
            "hold the integer {shown}{more} ({digits} digits), beyond 64 bits (-9223372036854775808 ..= 18446744073709551615): porter would read it as the nearest float; write it as a string"
        ),
    ))
}

const NUL_REFUSED: &str = "contains a NUL character (\\u0000), which PostgreSQL cannot store";

/// The most levels of arrays and objects a JSON document of a job may nest: porter's reader
/// (serde_json's) stops at 128. A deeper document is written and then cannot be read back: the
/// job would be discarded unrun (see [`crate::JobRow::unreadable`]).
pub const MAX_JSON_DEPTH: usize = 127;

/// Refuses what could be written but not read back in a JSON document: a NUL character in
/// any string or key (PostgreSQL's `jsonb` and `text` cannot hold one, and the insert would
/// fail as a database error; refused on SQLite too to keep the two backends alike), and
/// nesting deeper than [`MAX_JSON_DEPTH`].
fn refuse_unreadable(what: &'static str, value: &serde_json::Value) -> Result<()> {
    use serde_json::Value;
    // An explicit stack: a document built in code may nest deeper than the call stack allows.
    let mut stack = vec![(value, 0)];
    while let Some((v, depth)) = stack.pop() {
        if matches!(v, Value::Array(_) | Value::Object(_)) && depth == MAX_JSON_DEPTH {
            return Err(Error::invalid(
                what,
                format!(
                    "nest arrays and objects more than {MAX_JSON_DEPTH} levels deep, deeper than porter reads back"
                ),
            ));
        }
        match v {
            Value::String(s) if s.contains('\0') => return Err(Error::invalid(what, NUL_REFUSED)),
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, depth + 1))),
            Value::Object(map) => {
                if map.keys().any(|k| k.contains('\0')) {
                    return Err(Error::invalid(what, NUL_REFUSED));
                }
                stack.extend(map.values().map(|i| (i, depth + 1)));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The outcome of one insert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InsertResult {
    /// The new job, or the existing unfinished job holding the same unique key.
    pub job: JobRow,
    /// False when an existing job was returned because of its unique key.
    pub inserted: bool,
}

impl InsertResult {
    /// When nothing was inserted and the unique key's holder is a running job whose cancel is
    /// pending (it keeps the key until it has stopped, and then ends cancelled): a warning that
    /// nothing of this insert will run.
    pub fn held_by_a_cancelled_job(&self) -> Option<String> {
        (!self.inserted && self.job.cancel_requested()).then(|| {
            format!(
                "job {} holds this unique key and is being cancelled: nothing was inserted, and \
                 it will not run again; insert again once it has stopped",
                self.job.id
            )
        })
    }
}

/// Claim up to `limit` jobs of one queue for one worker.
#[derive(Debug, Clone)]
pub struct JobClaimParams {
    /// The queue to claim from.
    pub queue: String,
    /// Only jobs of these kinds (the kinds this worker can run).
    pub kinds: Vec<String>,
    /// At most this many.
    pub limit: u32,
    /// The claiming worker's id, recorded in `attempted_by`.
    pub worker_id: String,
}

/// What a producer tells a claim beyond [`JobClaimParams`], so that a queue with concurrency
/// limits can be claimed ahead of free slots without a worker taking all of a limit's room for
/// jobs that would only wait. [`ClaimAhead::default`] claims every job for a free slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClaimAhead {
    /// Of the claim's `limit`, how many jobs would wait in the producer's local queue rather
    /// than start at once in a free slot.
    pub ahead: u32,
    /// Jobs the producer already holds claimed and waiting for a slot (`running` in the
    /// database, but not started).
    pub waiting: u32,
    /// The producer's jobs running in a slot now (started and not returned). The claim counts
    /// the worker's own `running` rows of the queue: those neither waiting nor in a slot have
    /// finished, their outcome still being written (completions are batched), and leave the
    /// room as soon as it is, so they do not count against the room the producer may claim
    /// ahead in (they still count against the limit itself). Counted in the claim's own
    /// statement, so an outcome written meanwhile is never counted twice. Read after
    /// `waiting`: a job moving from waiting to a slot is then counted twice at worst (less
    /// room), never missed.
    pub in_slots: u32,
    /// Whether the queue had limits at the producer's last claim: Postgres then goes straight
    /// to the limited claim, without first trying the plain one.
    pub limited: bool,
}

impl ClaimAhead {
    /// The jobs of a claim of `limit` that are for free slots.
    pub fn for_slots(&self, limit: u32) -> u32 {
        limit.saturating_sub(self.ahead)
    }

    /// How many jobs a claim of `limit` may take from a queue with `limits`, and how many of
    /// them are for free slots: a rate-limited queue is claimed for free slots only.
    pub fn within(&self, limit: u32, limits: &QueueLimits) -> (u32, u32) {
        let for_slots = self.for_slots(limit);
        if limits.rate.is_some() || limits.rate_per_key.is_some() {
            (for_slots, for_slots)
        } else {
            (limit, for_slots)
        }
    }
}

/// What one claim took, and whether a queue limit held jobs back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobClaimed {
    /// The claimed jobs (now `running`).
    pub jobs: Vec<JobRow>,
    /// True when the queue has limits and due jobs were left because of them (the producer
    /// looks again soon, instead of waiting for a wake-up or the poll).
    pub held_back: bool,
    /// True when the queue has limits (the claim went through them).
    pub limited: bool,
    /// True when the queue has a rate limit (of the queue or per key): it is claimed only for
    /// free slots, never ahead of them, so that a claimed job starts at once and the window
    /// its start was counted in (at the claim) is the window it starts in.
    pub rate_limited: bool,
    /// True when a claim held back by a limit that still took jobs may find more at once: on
    /// PostgreSQL, a queue with a per-key limit (its claim locks a pool of 4 x the jobs asked
    /// for, which several jobs of one key may fill); never on SQLite, whose limited claim looks
    /// again until it takes nothing more.
    pub more_at_once: bool,
}

/// Record a failed attempt.
#[derive(Debug, Clone)]
pub struct JobFailParams {
    /// Who is writing.
    pub fence: JobFence,
    /// The error message.
    pub error: String,
    /// Optional trace (backtrace, panic location).
    pub trace: Option<String>,
    /// Delay before the next attempt; ignored when attempts are used up.
    pub retry_in: Duration,
    /// Discard now, whatever attempts remain (for errors that can never succeed).
    pub discard: bool,
}

/// The history entry of a job ended by a user's cancel request: a run its worker stopped, or
/// a snooze that ended the job instead ([`JobSnoozeParams`]).
pub const CANCELLED_BY_USER: &str = "cancelled by user";

/// Put a running job back to `scheduled` without using an attempt.
#[derive(Debug, Clone)]
pub struct JobSnoozeParams {
    /// Who is writing.
    pub fence: JobFence,
    /// How long from now until it is due again.
    pub delay: Duration,
}

/// Give a running job back, available again at once, without using an attempt.
#[derive(Debug, Clone)]
pub struct JobReleaseParams {
    /// Who is writing.
    pub fence: JobFence,
    /// Why (a shutdown, a reconcile), kept in the error history.
    pub reason: String,
    /// Whether the job may have started: `false` only for a job claimed ahead and given back
    /// before its handler was called. A job that has not started by the time a parent of it is
    /// retried waits for that parent again (see migration 0044); the entry this release adds
    /// to the history says so ([`AttemptError::unstarted`](crate::job::AttemptError::unstarted)).
    pub started: bool,
}

/// A running job cancels itself.
#[derive(Debug, Clone)]
pub struct JobCancelRunningParams {
    /// Who is writing.
    pub fence: JobFence,
    /// Why, kept in the error history.
    pub reason: String,
    /// Whether its handler ran. A job cancelled while it waited for a slot (claimed ahead)
    /// did not: its entry says `"unstarted": true`, as a give-back's does, so a parent
    /// retried by hand after the job itself was retried is waited for again.
    pub started: bool,
}

/// Record what a running job produced (fenced): its output, its progress, or both. The ones
/// given replace the stored ones; `None` keeps what is stored.
#[derive(Debug, Clone)]
pub struct JobRecordParams {
    /// Who is writing.
    pub fence: JobFence,
    /// The job's output (at most [`MAX_OUTPUT_BYTES`] as JSON).
    pub output: Option<serde_json::Value>,
    /// The job's progress (at most [`MAX_PROGRESS_BYTES`] as JSON).
    pub progress: Option<serde_json::Value>,
}

/// What a job recorded while it ran.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobOutput {
    /// Its output, if it recorded one.
    pub output: Option<serde_json::Value>,
    /// Its latest progress, if it recorded any.
    pub progress: Option<serde_json::Value>,
}

/// Largest output a job may record, as compact JSON: 256 KiB. A bigger one is refused with
/// [`Error::Invalid`] and nothing is written.
pub const MAX_OUTPUT_BYTES: usize = 256 * 1024;
/// Largest progress a job may record, as compact JSON: 16 KiB (refused beyond, like output).
pub const MAX_PROGRESS_BYTES: usize = 16 * 1024;

impl JobRecordParams {
    /// Refuses an output or progress over its cap, or with a NUL character. Nothing is written.
    pub fn check(&self) -> Result<()> {
        for (what, value, cap) in [
            ("output", &self.output, MAX_OUTPUT_BYTES),
            ("progress", &self.progress, MAX_PROGRESS_BYTES),
        ] {
            let Some(value) = value else { continue };
            let size = json_size(value, cap + 1);
            if size > cap {
                return Err(Error::invalid(
                    what,
                    format!(
                        "is over {cap} bytes ({} KiB) as JSON, the most a job records; \
                         store large results elsewhere (a file, an object) and record a reference",
                        cap / 1024
                    ),
                ));
            }
            refuse_unreadable(what, value)?;
        }
        Ok(())
    }
}

/// Filters for listing jobs, newest first, with keyset paging on id.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JobListParams {
    /// Any of these states (empty: all).
    #[serde(default)]
    pub states: Vec<JobState>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this queue.
    pub queue: Option<String>,
    /// Only jobs with an id below this (the previous page's last id).
    pub before_id: Option<i64>,
    /// Page size (default 100, at most 10,000).
    pub limit: Option<u32>,
}

/// How many jobs one queue has in one state, as a driver counts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCountRow {
    /// Queue name.
    pub queue: String,
    /// State.
    pub state: JobState,
    /// Jobs.
    pub count: i64,
}

/// Job counts by state, every state present.
pub type StateCounts = BTreeMap<JobState, i64>;

/// Counts for `porter stats`: totals and per queue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobCounts {
    /// Counts over all queues.
    pub total: StateCounts,
    /// Counts per queue.
    pub queues: BTreeMap<String, StateCounts>,
}

impl JobCounts {
    /// Builds counts from (queue, state, count) rows, with zeroes for absent states.
    pub fn from_rows(rows: impl IntoIterator<Item = (String, JobState, i64)>) -> Self {
        let zero = || {
            JobState::ALL
                .iter()
                .map(|s| (*s, 0))
                .collect::<StateCounts>()
        };
        let mut counts = JobCounts {
            total: zero(),
            queues: BTreeMap::new(),
        };
        for (queue, state, n) in rows {
            *counts.total.entry(state).or_default() += n;
            *counts
                .queues
                .entry(queue)
                .or_insert_with(zero)
                .entry(state)
                .or_default() += n;
        }
        counts
    }
}

/// Delete finished jobs older than their retention, in bounded batches.
#[derive(Debug, Clone)]
pub struct JobDeleteFinalizedParams {
    /// Completed jobs older than this go.
    pub completed: Duration,
    /// Cancelled jobs older than this go.
    pub cancelled: Duration,
    /// Discarded jobs older than this go.
    pub discarded: Duration,
    /// At most this many rows per call.
    pub limit: u32,
}

/// Rescue running jobs whose worker is gone or that have run far past their timeout.
#[derive(Debug, Clone)]
pub struct JobRescueParams {
    /// A worker that has not heartbeated within this is lost, unless it registered a lease of
    /// its own ([`Store::worker_register`]): then its own lease is the measure.
    pub lease: Duration,
    /// Per kind: a job of that kind running longer than this is stuck, unless the worker that
    /// claimed it registered a limit for the kind: then that limit is the measure. Only a live
    /// worker's job, once that worker has been heard from since the limit passed, and not in
    /// the 2.5 s (a third of its lease when shorter) after a heartbeat of it that came more
    /// than half its lease late: its outcomes from the stall may still land.
    pub stuck_after: Vec<(String, Duration)>,
    /// At most this many rows per call.
    pub limit: u32,
    /// The worker whose rescuer asks, if any: then no worker is judged lost unless that
    /// worker's own heartbeat was recorded within half its lease and has been steady for a
    /// whole lease (since it registered, with no heartbeat more than half a lease after the
    /// one before). After a stall
    /// (its process stopped, or the database taking no write from anyone) every heartbeat
    /// looks old until each worker's held-up one is through, and live workers would be judged
    /// lost, by a pass sent before the stall and run only after it too. A worker registered
    /// without a lease ([`Store::worker_heartbeat`]) passes that check. And since a rescuer
    /// sees stalls only at its own lease's measure, a worker whose lease is shorter than
    /// `lease` is judged lost, when asked by a worker, once silent for `lease` too, or once a
    /// worker of a lease no longer than its own is fresh and steady for that lease. Stuck
    /// jobs are judged either way (by their own workers' heartbeats: see `stuck_after`).
    pub by: Option<String>,
    /// Jobs of the asking worker (`by`) whose handler has ended and whose outcome it is still
    /// writing, as (id, attempt): never taken for stuck at that attempt, whatever their time
    /// (their outcome is on its way, and a stuck take would fence it off and run them again).
    /// Ignored for other workers' jobs, and without `by`.
    pub ending: Vec<(i64, i32)>,
}

/// A worker process's heartbeat, with no lease or limits of its own (rescuers judge it by
/// theirs); workers register with [`WorkerRegisterParams`].
#[derive(Debug, Clone)]
pub struct WorkerHeartbeatParams {
    /// Worker id (unique per process start).
    pub id: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: i64,
}

/// A worker process's registration: who it is, and the limits it is judged by.
#[derive(Debug, Clone)]
pub struct WorkerRegisterParams {
    /// Worker id (unique per process start).
    pub id: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: i64,
    /// This worker's own lease: every rescuer judges it lost only once it has not heartbeated
    /// for this long, whatever the rescuer's own lease is.
    pub lease: Duration,
    /// Per kind, how long a job this worker claimed may run before it counts as stuck (its
    /// timeout plus margin), whatever the rescuer's own limits are.
    pub stuck_after: Vec<(String, Duration)>,
    /// The queues this worker claims from. With [`kinds`](Self::kinds), what it serves:
    /// every kind listed in every queue listed ([`Store::job_unserved`]).
    pub queues: Vec<String>,
    /// The kinds this worker runs (its registry's, built-in and periodic ones included).
    pub kinds: Vec<String>,
    /// The worker still has outcomes it could not write (a database outage, a lock held long)
    /// and is retrying them: stuck passes leave its jobs alone for 2.5 s after this heartbeat
    /// (a third of its lease when shorter), as after a late one, while those outcomes land
    /// (`porter_workers.outcomes_failing_at`). Its own rescue of lost workers goes on.
    pub unsteady: bool,
    /// How long since this worker's previous heartbeat went out, by its own monotonic clock
    /// (`None`: no heartbeat before, or none to compare with). A heartbeat whose time by the
    /// database's clock is later than that, and [`CLOCK_JUMP_MARGIN`] more, finds the clock
    /// jumped ahead (a laptop's sleep, a VM paused, a clock stepped on) and records when and by
    /// how much (`porter_workers.clock_jumped_at`, `clock_jumped_ms`): the stuck-job rescue
    /// takes that much off the time of a job running across it, for the jump was no time the
    /// job ran (its own timeout counts on the monotonic clock).
    pub since_last: Option<Duration>,
}

/// How much later than its worker's own clock allows a heartbeat may come by the database's
/// clock before that clock is taken to have jumped ahead
/// ([`WorkerRegisterParams::since_last`]): half the stuck rescue's margin over a job's timeout
/// ([`crate::maintenance::STUCK_MARGIN`]), so that one jump too small to be seen cannot have
/// a job taken as stuck before its own timeout stops it (jumps unseen add up, though). A
/// heartbeat held up this long more than the one before it (a write lock) reads as a jump too:
/// its worker's running jobs are then taken as stuck as much later as it was held up.
pub const CLOCK_JUMP_MARGIN: Duration = Duration::from_secs(15);

/// [`WorkerRegisterParams::since_last`] and [`CLOCK_JUMP_MARGIN`] as the stores bind them, in
/// milliseconds.
pub(crate) fn heartbeat_gap(p: &WorkerRegisterParams) -> (Option<i64>, i64) {
    (p.since_last.map(stored_ms), stored_ms(CLOCK_JUMP_MARGIN))
}

/// Whether live workers serve a queue and kind ([`Store::worker_count_serving`]).
#[derive(Debug, Clone)]
pub struct WorkerServingParams {
    /// Queue name.
    pub queue: String,
    /// Kind.
    pub kind: String,
    /// The lease by which a registration without one of its own is judged live.
    pub lease: Duration,
}

/// The lease of a worker that registered none of its own (a bare
/// [`Store::worker_heartbeat`], a binary from before leases were registered): the default
/// lease, [`crate::runtime::DEFAULT_LEASE`], by which such a worker is judged live when no
/// rescuer's own lease is at hand.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);

/// Jobs due to run of one queue and kind that no live worker serves
/// ([`Store::job_unserved`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnservedRow {
    /// Queue name.
    pub queue: String,
    /// Kind.
    pub kind: String,
    /// Jobs due to run (available, or scheduled/retryable and due).
    pub count: i64,
}

impl UnservedRow {
    /// The warning for jobs of a queue and kind that no live worker serves, as `porter
    /// enqueue` and `POST /admin/jobs` give it: `no live worker serves queue 'q' kind 'k';
    /// the job waits until one does` (`jobs wait` for more than one).
    pub fn warning(queue: &str, kind: &str, jobs: u64) -> String {
        let waits = if jobs == 1 {
            "the job waits"
        } else {
            "the jobs wait"
        };
        format!("no live worker serves queue '{queue}' kind '{kind}'; {waits} until one does")
    }
}

/// One line per queue and kind, as `porter stats` prints it: `12 jobs in queue 'emails' of
/// kind 'send' wait with no live worker serving them`.
impl std::fmt::Display for UnservedRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (jobs, wait, them) = if self.count == 1 {
            ("job", "waits", "it")
        } else {
            ("jobs", "wait", "them")
        };
        write!(
            f,
            "{} {jobs} in queue '{}' of kind '{}' {wait} with no live worker serving {them}",
            self.count, self.queue, self.kind
        )
    }
}

/// What `porter stats --json` and `GET /admin/stats` show: the job counts (the contract's
/// `total` and `queues`) and, under `unserved`, the jobs due to run that no live worker
/// serves, queue -> kind -> jobs (`{}` when every one is served).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Counts over all queues and per queue.
    #[serde(flatten)]
    pub counts: JobCounts,
    /// Jobs nobody will run as things stand ([`Store::job_unserved`]).
    #[serde(default)]
    pub unserved: Unserved,
}

/// Unserved jobs as `porter stats --json` and `GET /admin/stats` show them: queue -> kind ->
/// jobs due to run that no live worker serves; only pairs that have any.
pub type Unserved = BTreeMap<String, BTreeMap<String, i64>>;

/// Gathers [`UnservedRow`]s by queue, then kind.
pub fn unserved_by_queue(rows: &[UnservedRow]) -> Unserved {
    let mut out = Unserved::new();
    for r in rows {
        *out.entry(r.queue.clone())
            .or_default()
            .entry(r.kind.clone())
            .or_default() += r.count;
    }
    out
}

/// A duration as the milliseconds the stores keep (a lease, a stuck limit), clamped to
/// [`MAX_DURATION`].
pub(crate) fn stored_ms(d: Duration) -> i64 {
    d.min(MAX_DURATION).as_millis() as i64
}

/// Per-kind limits as the JSON object the stores keep: kind -> milliseconds.
pub(crate) fn stored_limits(limits: &[(String, Duration)]) -> serde_json::Value {
    limits
        .iter()
        .map(|(k, d)| (k.clone(), serde_json::Value::from(stored_ms(*d))))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// What a rescue pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RescueCounts {
    /// Jobs made retryable.
    pub retried: u64,
    /// Jobs discarded because their attempts were used up.
    pub discarded: u64,
    /// Jobs cancelled because a user had asked to cancel them while they ran.
    #[serde(default)]
    pub cancelled: u64,
}

/// One job a rescue pass moved: its queue, kind and new state (`retryable`, `discarded` or
/// `cancelled`), for the metrics of the process that rescued it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RescuedJob {
    /// Queue name.
    pub queue: String,
    /// Kind.
    pub kind: String,
    /// The state the rescue left it in.
    pub state: JobState,
}

/// What a rescue pass did, job by job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rescued {
    /// The jobs it moved.
    pub jobs: Vec<RescuedJob>,
}

impl Rescued {
    /// The counts by new state.
    pub fn counts(&self) -> RescueCounts {
        let mut counts = RescueCounts::default();
        for job in &self.jobs {
            match job.state {
                JobState::Discarded => counts.discarded += 1,
                JobState::Cancelled => counts.cancelled += 1,
                _ => counts.retried += 1,
            }
        }
        counts
    }

    /// Gathers the (new state, queue, kind) rows of the rescue statements that succeeded; the
    /// first error, if any statement failed, after all of them ran (what the others rescued
    /// stays rescued).
    pub fn from_outcomes(outcomes: Vec<Result<Vec<(String, String, String)>>>) -> Result<Rescued> {
        let mut rescued = Rescued::default();
        let mut first_error = None;
        for outcome in outcomes {
            match outcome {
                Ok(rows) => {
                    for (state, queue, kind) in rows {
                        rescued.jobs.push(RescuedJob {
                            queue,
                            kind,
                            state: state.parse()?,
                        });
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(rescued), Err)
    }
}

/// The jobs of one queue that are due to run (available, or scheduled/retryable and due):
/// how many, and since when the oldest has waited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDueRow {
    /// Queue name.
    pub queue: String,
    /// Jobs due to run.
    pub depth: i64,
    /// The oldest due job's due time (`scheduled_at`).
    pub oldest_due_at: DateTime<Utc>,
}

/// How far one queue is behind: its due jobs and the age of the oldest (its lag).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueLag {
    /// Queue name.
    pub queue: String,
    /// Jobs due to run (available, or scheduled/retryable and due).
    pub depth: i64,
    /// How long the oldest due job has been due, by the database clock (zero when none is).
    pub lag: Duration,
}

/// A queue and whether it is paused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueRow {
    /// Queue name.
    pub name: String,
    /// When it was paused, if it is.
    pub paused_at: Option<DateTime<Utc>>,
    /// Its flow-control limits (see [`limits`]).
    #[serde(default)]
    pub limits: QueueLimits,
}

impl QueueRow {
    /// A queue porter has no record of: not paused, no limits.
    pub(crate) fn unrecorded(name: &str) -> Self {
        QueueRow {
            name: name.to_string(),
            paused_at: None,
            limits: QueueLimits::default(),
        }
    }
}

/// A worker process, as registered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerRow {
    /// Worker id (unique per process start).
    pub id: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: i64,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its latest heartbeat.
    pub heartbeat_at: DateTime<Utc>,
    /// The queues it claims from, as it registered them; `None` for a registration from
    /// before workers registered what they serve (it may serve any).
    #[serde(default)]
    pub queues: Option<Vec<String>>,
    /// The kinds it runs, as it registered them; `None` as for `queues`.
    #[serde(default)]
    pub kinds: Option<Vec<String>>,
}

/// How far a periodic job's recorded slot may lie after now (the store's clock, at the write)
/// before it is taken for the mark of a clock that ran ahead (a VM resumed with a wrong clock, a database server
/// whose clock was set back) and replaced: the slot only moved forward, and such a mark
/// stopped the schedule until real time caught up with it (review of 6 Dec). Slots are never
/// recorded ahead of the clock that computed them, so any lead is a clock's; five minutes
/// leaves room for the clocks of several machines that disagree a little.
pub const PERIODIC_CLOCK_SLACK_MS: i64 = 5 * 60 * 1000;

/// Enqueue a periodic job's slot, once across every process.
#[derive(Debug, Clone)]
pub struct PeriodicEnqueueParams {
    /// The periodic job's name.
    pub name: String,
    /// The slot (Unix milliseconds of its due time). The first slot recorded for a name only
    /// records it: a periodic job seen for the first time waits for its next slot. It moves
    /// the recorded slot forward, or back from more than [`PERIODIC_CLOCK_SLACK_MS`] ahead of
    /// now (then inserting the job only when none of this slot is recorded: it may have run
    /// before the clock jumped).
    pub slot: i64,
    /// The job to insert when the slot advances.
    pub job: JobInsertParams,
}

/// The database under a store, for an application's own SQL beside porter's: its own tables
/// in the same database, and jobs inserted inside its own transactions
/// ([`Client::insert_tx_sqlite`](crate::Client::insert_tx_sqlite) inside
/// [`SqliteStore::write_tx`](sqlite::SqliteStore::write_tx),
/// [`Client::insert_tx_pg`](crate::Client::insert_tx_pg) on a transaction of
/// [`PgStore::pool`](postgres::PgStore::pool)), so that they exist if and only if the
/// application's writes commit. This is public API: porter's own tablo app uses nothing else.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Database<'a> {
    /// The SQLite store: [`write_tx`](sqlite::SqliteStore::write_tx) runs a closure on the
    /// process's one write connection inside its transaction,
    /// [`read`](sqlite::SqliteStore::read) on a read connection.
    Sqlite(&'a sqlite::SqliteStore),
    /// The PostgreSQL store, whose [`pool`](postgres::PgStore::pool) the application shares.
    #[cfg(feature = "postgres")]
    Postgres(&'a postgres::PgStore),
}

/// How a store is opened, beyond its URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Most connections of the PostgreSQL pool (default 10, [`DEFAULT_POOL_SIZE`]; at least
    /// 2, since one is held by the LISTEN task). The CLI's `--db-pool-size`
    /// (`PORTER_DB_POOL_SIZE`). SQLite has no server connections to bound and ignores it.
    pub pool_size: Option<u32>,
    /// SQLite: while another connection holds the write lock past the writer's deadline (60 s;
    /// a process stopped inside a write transaction, say), keep waiting for it with a warning
    /// every deadline instead of failing the waiting writes. For long-running processes
    /// (`porter worker`, `web`, `dev`), which wait for their database as they wait for a
    /// server; one-shot commands fail instead. PostgreSQL ignores it.
    pub wait_for_locks: bool,
}

/// Default size of the PostgreSQL connection pool.
pub const DEFAULT_POOL_SIZE: u32 = 10;

impl OpenOptions {
    /// The pool size, defaulted; below 2 is refused.
    pub fn effective_pool_size(&self) -> Result<u32> {
        match self.pool_size.unwrap_or(DEFAULT_POOL_SIZE) {
            n if n < 2 => Err(Error::invalid(
                "pool size",
                format!("{n} is too small: the pool needs at least 2 connections (one listens for wake-ups)"),
            )),
            n => Ok(n),
        }
    }
}

/// Opens the store a database URL names and migrates it: `sqlite://path`,
/// `sqlite:///abs/path`, or `postgres://...`. (`sqlite::memory:` is refused: porter's
/// processes share one file; a test takes a fresh file from [`crate::testing::sqlite_store`].)
pub async fn open(url: &str) -> Result<Arc<Store>> {
    open_at(url, None, &OpenOptions::default()).await
}

/// Opens the store like [`open`], with options (the Postgres pool size).
pub async fn open_with(url: &str, options: &OpenOptions) -> Result<Arc<Store>> {
    open_at(url, None, options).await
}

/// The file a `sqlite:` URL names (as given: relative to the working directory when the URL
/// is), `None` for another URL or a malformed one.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    sqlite::parse_url(url).ok().map(|(path, _)| path)
}

/// The `sqlite:` URL of the file at `path`, its path percent-encoded where porter decodes it
/// (`%`, `?`, `#`, control characters), so that [`sqlite_file`] gives `path` back whatever
/// its name holds. (Built by hand, a directory named with a `%41` opened another file, and one
/// with a `?` was refused as an unknown option: review of 6 Dec, `testing::sqlite_store` under
/// such a temporary directory.)
pub fn sqlite_url(path: &std::path::Path) -> String {
    const ESCAPED: &percent_encoding::AsciiSet =
        &percent_encoding::CONTROLS.add(b'%').add(b'?').add(b'#');
    format!(
        "sqlite://{}",
        percent_encoding::utf8_percent_encode(&path.to_string_lossy(), ESCAPED)
    )
}

/// Whether `url` is one porter can open, by its form alone: nothing is opened or logged. The
/// CLI refuses a malformed URL with this, as a usage error, before it touches any database.
pub fn check_url(url: &str) -> Result<()> {
    if url.starts_with("sqlite:") {
        sqlite::parse_url(url).map(|_| ())
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        return postgres::connect_options(url, false).map(|_| ());
        #[cfg(not(feature = "postgres"))]
        return Err(without_postgres());
    } else {
        Err(unknown_scheme(url))
    }
}

#[cfg(not(feature = "postgres"))]
fn without_postgres() -> Error {
    Error::invalid(
        "database url",
        "this porter was built without the postgres feature",
    )
}

fn unknown_scheme(url: &str) -> Error {
    Error::invalid(
        "database url",
        format!(
            "{} has an unknown scheme; use sqlite://FILE or postgres://...",
            redact_url(url)
        ),
    )
}

async fn open_at(
    url: &str,
    clock: Option<clock::Clock>,
    options: &OpenOptions,
) -> Result<Arc<Store>> {
    options.effective_pool_size()?;
    if url.starts_with("sqlite:") {
        let clock = clock.unwrap_or_default();
        let driver = sqlite::SqliteStore::open_at(url, clock, options.wait_for_locks).await?;
        Ok(Arc::new(Store::new(Arc::new(driver))))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        {
            let driver = postgres::PgStore::open_at(url, clock, options).await?;
            Ok(Arc::new(Store::new(Arc::new(driver))))
        }
        #[cfg(not(feature = "postgres"))]
        {
            let _ = clock;
            Err(without_postgres())
        }
    } else {
        Err(unknown_scheme(url))
    }
}

/// Opens like [`open`], with every statement reading "now" from `clock` instead of the
/// database's clock: for tests that move time instead of sleeping (see [`clock`]).
pub async fn open_with_clock(url: &str, clock: clock::Clock) -> Result<Arc<Store>> {
    open_at(url, Some(clock), &OpenOptions::default()).await
}

/// First and longest wait between two attempts of [`open_retrying`].
pub const OPEN_RETRY_BACKOFF: (Duration, Duration) =
    (Duration::from_millis(500), Duration::from_secs(10));

/// Opens the store like [`open`], for long-running processes: while a database server does
/// not answer ([`Error::Unavailable`]: refused, not up yet, starting up, no such database yet),
/// logs why and tries again with backoff ([`OPEN_RETRY_BACKOFF`]) until `stop` resolves, which
/// gives `Ok(None)`. Every other error returns at once: a malformed URL, a database newer than
/// this binary, a failed migration, and any SQLite error (a local file has nothing to wait for).
pub async fn open_retrying(
    url: &str,
    stop: impl std::future::Future<Output = ()>,
) -> Result<Option<Arc<Store>>> {
    open_retrying_with(url, &OpenOptions::default(), stop).await
}

/// [`open_retrying`] with options.
pub async fn open_retrying_with(
    url: &str,
    options: &OpenOptions,
    stop: impl std::future::Future<Output = ()>,
) -> Result<Option<Arc<Store>>> {
    let server = !url.starts_with("sqlite:");
    retry_while_unavailable(
        server,
        OPEN_RETRY_BACKOFF,
        "opening the database",
        || open_with(url, options),
        stop,
    )
    .await
}

/// Runs `attempt` until it answers, trying again with backoff (`backoff`: the first and the
/// longest wait, doubling between) while a database server does not answer
/// ([`Error::Unavailable`], logged with `what`), and only on a server (`server`): a SQLite
/// file has nothing to wait for, and its errors return at once, as every other error does.
/// Each try and each wait is raced with `stop`, which gives `Ok(None)`.
pub async fn retry_while_unavailable<T, F, Fut>(
    server: bool,
    backoff: (Duration, Duration),
    what: &str,
    mut attempt: F,
    stop: impl std::future::Future<Output = ()>,
) -> Result<Option<T>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let (mut delay, longest) = backoff;
    tokio::pin!(stop);
    loop {
        let answered = tokio::select! {
            answered = attempt() => answered,
            _ = &mut stop => return Ok(None),
        };
        match answered {
            Ok(value) => return Ok(Some(value)),
            Err(e @ Error::Unavailable(_)) if server => {
                tracing::warn!(error = %e, retry_in = ?delay, "{what} failed: the database is unavailable; retrying");
            }
            Err(e) => return Err(e),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = &mut stop => return Ok(None),
        }
        delay = (delay * 2).min(longest);
    }
}

/// A URL (database or object store) with every credential replaced by `***`, for logs and
/// errors: the password of `user:password@host`, and the value of every query parameter whose
/// name says it is a secret (`password`, `sslpassword`, `secret_access_key`, `token`,
/// `sslkey`, ...). The rest is kept as written. Works on malformed URLs too (it never parses
/// more than it must).
pub fn redact_url(url: &str) -> String {
    // A password written with a '/', '?' or '#' not percent-escaped (`user:pa/ss@host`) ends a
    // URL parser's authority early, and would be kept as "path" below: a user name, a ':' and
    // an '@' later in the URL hide everything between the ':' and the last '@' first.
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((userinfo, after)) = rest.rsplit_once('@') {
            if let Some((user, _password)) = userinfo.split_once(':') {
                // What follows the '@' is a host, a path and a query: an '=' or '&' before its
                // '?' says this '@' was in a query value (`?user=a@b.c&password=...`), and the
                // query is left to the reading below, which hides its secrets.
                let hostpath = after.split(['?', '#']).next().unwrap_or("");
                if !user.contains(['/', '?', '#'])
                    && userinfo.contains(['/', '?', '#', '@'])
                    && !hostpath.contains(['=', '&'])
                {
                    return format!("{scheme}://{user}:***@{}", redact_url(after));
                }
            }
        }
    }
    let (before_fragment, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (url, None),
    };
    let (base, query) = match before_fragment.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (before_fragment, None),
    };
    let mut out = String::with_capacity(url.len());
    // userinfo: between "://" and the last '@' of the authority.
    match base.split_once("://") {
        Some((scheme, rest)) => {
            out.push_str(scheme);
            out.push_str("://");
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => {
                    match userinfo.split_once(':') {
                        Some((user, _password)) => {
                            out.push_str(user);
                            out.push_str(":***");
                        }
                        None => out.push_str(userinfo),
                    }
                    out.push('@');
                    out.push_str(host);
                }
                None => out.push_str(authority),
            }
            out.push_str(path);
        }
        // No authority (`sqlite:file.db`): an '@' still hides what comes before it.
        None => match base.rsplit_once('@') {
            Some((_, rest)) => {
                out.push_str("***@");
                out.push_str(rest);
            }
            None => out.push_str(base),
        },
    }
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if secret_parameter(key) => format!("{key}=***"),
                _ => pair.to_string(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    if let Some(fragment) = fragment {
        // A fragment has no defined meaning in a database URL: hide it whole.
        let _ = fragment;
        out.push_str("#***");
    }
    out
}

/// Whether a URL query parameter's name says it holds a credential.
fn secret_parameter(key: &str) -> bool {
    let key: String = url::form_urlencoded::parse(format!("{key}=").as_bytes())
        .next()
        .map(|(k, _)| k.to_ascii_lowercase())
        .unwrap_or_default();
    [
        "pass",
        "pwd",
        "secret",
        "token",
        "key",
        "signature",
        "credential",
        "auth",
    ]
    .iter()
    .any(|w| key.contains(w))
}

/// The longest duration the stores put into time arithmetic: 1,000 years. A longer one (a
/// worker's `max_timeout` of `Duration::MAX`, a lease or retention of ten thousand years, a
/// `next_retry` or snooze that large) means "never" in practice and is clamped to this, in
/// this one place ([`clamp_secs`], which both backends use for every duration they bind),
/// so that `now ± duration` stays inside both databases' time range: SQLite's date
/// functions give NULL before year 0 and after 9999, and PostgreSQL raises "interval out of
/// range" or "timestamp out of range". A `schedule_in` longer than this is refused instead
/// (see [`JobInsertParams::new`]), since its due time is the caller's explicit wish.
pub const MAX_DURATION: Duration = Duration::from_secs(1_000 * 365 * 86_400);

/// A duration in seconds for SQL, clamped to [`MAX_DURATION`].
pub fn clamp_secs(d: Duration) -> f64 {
    d.min(MAX_DURATION).as_secs_f64()
}

/// The earliest time porter stores, in Unix milliseconds: 1970-01-01T00:00:00Z.
pub const EARLIEST_TIME_MS: i64 = 0;
/// The latest time porter stores, in Unix milliseconds: 9999-12-31T23:59:59.999Z (SQLite's
/// date functions end with year 9999; PostgreSQL would take far more, but the backends must
/// agree).
pub const LATEST_TIME_MS: i64 = 253_402_300_799_999;

const TIME_RANGE: &str = "1970-01-01T00:00:00Z ..= 9999-12-31T23:59:59.999Z";

fn time_in_range(t: DateTime<Utc>) -> bool {
    let first = DateTime::from_timestamp_millis(EARLIEST_TIME_MS).expect("in chrono's range");
    let last = DateTime::from_timestamp_millis(LATEST_TIME_MS).expect("in chrono's range");
    (first..=last).contains(&t)
}

/// Refuses a due time outside [`EARLIEST_TIME_MS`] ..= [`LATEST_TIME_MS`], with the same
/// [`Error::Invalid`] on both backends. [`JobInsertParams::new`] calls it, so the library, the
/// CLI and the admin API refuse alike; the stores check again for params built by hand.
pub fn check_scheduled_at(at: Option<DateTime<Utc>>) -> Result<()> {
    match at {
        Some(t) if !time_in_range(t) => Err(Error::invalid(
            "scheduled_at",
            format!(
                "{} is outside the times porter stores ({TIME_RANGE})",
                t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            ),
        )),
        _ => Ok(()),
    }
}

/// Refuses a `schedule_in` longer than [`MAX_DURATION`] (1000 years), which keeps the due
/// time inside the stored range. Called like [`check_scheduled_at`].
pub fn check_schedule_in(delay: Option<Duration>) -> Result<()> {
    match delay {
        Some(d) if d > MAX_DURATION => Err(Error::invalid(
            "schedule_in",
            format!(
                "a delay of {} days is longer than the longest, 1000 years (365000 days); give a due time (scheduled_at) instead",
                d.as_secs() / 86_400
            ),
        )),
        _ => Ok(()),
    }
}

impl JobInsertParams {
    /// Checks the due time of params that may have been built by hand (see
    /// [`check_scheduled_at`]); the stores call it before they write anything.
    pub fn check_times(&self) -> Result<()> {
        check_scheduled_at(self.scheduled_at)?;
        check_schedule_in(self.schedule_in)
    }

    /// The row of this job as just inserted: what the database decided (`id` and `at`) and
    /// what was sent. Both drivers read only the former back.
    pub(crate) fn inserted_row(&self, id: i64, at: InsertedAt) -> JobRow {
        JobRow {
            id,
            kind: self.kind.clone(),
            queue: self.queue.clone(),
            args: self.args.clone(),
            state: at.state,
            priority: self.priority,
            attempt: 0,
            max_attempts: self.max_attempts,
            errors: at.errors,
            created_at: at.created_at,
            scheduled_at: at.scheduled_at,
            attempted_at: None,
            finalized_at: at.finalized_at,
            attempted_by: None,
            unique_key: self.unique_key.clone(),
            metadata: self.metadata.clone(),
            output: None,
            progress: None,
            concurrency_key: self.concurrency_key.clone(),
            sequence_key: self.sequence_key.clone(),
            unreadable: None,
        }
    }
}

/// What the database decides for a job it inserts, besides its id: how it starts and when.
#[derive(Debug, Clone)]
pub(crate) struct InsertedAt {
    pub state: JobState,
    pub errors: Vec<crate::job::AttemptError>,
    pub created_at: DateTime<Utc>,
    pub scheduled_at: DateTime<Utc>,
    pub finalized_at: Option<DateTime<Utc>>,
}

/// The most attempts a job may be given. Snoozes and shutdowns add one each (so that they use
/// up none), which must never overflow the 32-bit column.
pub const MAX_ATTEMPTS: i32 = 1_000_000;

/// Page size used when a list does not say.
pub const DEFAULT_LIST_LIMIT: u32 = 100;
/// Largest page a list returns.
pub const MAX_LIST_LIMIT: u32 = 10_000;
/// Queues read at a time by [`Store::queue_list`].
pub const QUEUE_PAGE: u32 = 1000;

impl JobListParams {
    /// The page size, defaulted and capped ([`list_page_size`]).
    pub fn effective_limit(&self) -> u32 {
        list_page_size(self.limit)
    }
}

/// A listing's `limit` as the HTTP listings read it: a whole number of at least 1 (a leading
/// `+` as the integer parsers take it); one too long for a u32 is as many as are listed at most
/// (`u32::MAX`, cut to [`MAX_LIST_LIMIT`] by [`list_page_size`]). `None` for anything else: 0,
/// a minus sign, letters.
pub fn read_list_limit(value: &str) -> Option<u32> {
    let digits = value.strip_prefix('+').unwrap_or(value);
    let many = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.bytes().any(|b| b != b'0');
    match value.parse::<u32>() {
        Ok(n) if n >= 1 => Some(n),
        Err(_) if many => Some(u32::MAX),
        _ => None,
    }
}

/// A listing's page size: `limit` when given, else [`DEFAULT_LIST_LIMIT`], from 1 to
/// [`MAX_LIST_LIMIT`].
pub fn list_page_size(limit: Option<u32>) -> u32 {
    limit.unwrap_or(DEFAULT_LIST_LIMIT).clamp(1, MAX_LIST_LIMIT)
}

/// Opens one end of a [`copy`] on the database a URL names, on a connection of its own. The
/// caller has migrated it (every set the binary knows, so both ends have the same tables).
/// (Here beside [`open`], like [`migrate`]: the backends use [`copy`]'s types.)
pub async fn open_copy_end(url: &str) -> Result<Box<dyn copy::CopyEnd>> {
    if url.starts_with("sqlite:") {
        return Ok(Box::new(sqlite::copy::SqliteEnd::open(url).await?));
    }
    #[cfg(feature = "postgres")]
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Box::new(postgres::copy::PgEnd::open(url).await?));
    }
    Err(Error::invalid(
        "database url",
        format!("{} is not a database porter can copy", redact_url(url)),
    ))
}

/// Applies a set's pending migrations to the database a URL names (`sqlite://...` or
/// `postgres://...`), in their own connection. For an application's own set:
/// `porter::store::migrate(&url, &MY_SET).await`. The queue's [`migrations::CORE`] set runs
/// when a store opens. (It lives here, beside [`open`], rather than in [`migrations`]: the
/// backends use that module's types, so it calls neither of them.)
pub async fn migrate(url: &str, set: &migrations::MigrationSet) -> Result<()> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        return postgres::run_migrations_at(url, set).await;
        #[cfg(not(feature = "postgres"))]
        return Err(without_postgres());
    }
    sqlite::run_migrations_at(url, set).await
}
