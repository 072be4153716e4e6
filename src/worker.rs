//! Workers: the code that runs a kind of job, and the registry that maps kinds to workers.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::job::{default_backoff, validate_name, JobArgs, JobFence, JobRow};
use crate::store::{JobRecordParams, Store};

/// Default time a job may run before it is cancelled and failed (River's default).
pub const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(60);

/// How often, at most, a running job's progress is written: calls to
/// [`Job::set_progress`] in between only keep the latest value in memory.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// A job handed to a worker: its decoded args, its row as claimed, a token that is
/// cancelled when the job must stop (hard shutdown or timeout), and its context, through which
/// it records an output and progress ([`Job::set_output`], [`Job::set_progress`]).
#[derive(Debug, Clone)]
pub struct Job<A> {
    /// Decoded arguments.
    pub args: A,
    /// The row as claimed (state `running`, `attempt` already counted).
    pub row: JobRow,
    /// Cancelled when the job should stop early; long jobs may watch it.
    pub cancel: CancellationToken,
    context: JobContext,
}

impl<A> Job<A> {
    /// The job's id.
    pub fn id(&self) -> i64 {
        self.row.id
    }
    /// The current attempt (1 on the first run).
    pub fn attempt(&self) -> i32 {
        self.row.attempt
    }

    /// Records the job's output (any JSON value, at most
    /// [`MAX_OUTPUT_BYTES`](crate::store::MAX_OUTPUT_BYTES) = 256 KiB as JSON), written at once
    /// and fenced: once the job was rescued or cancelled away from this attempt, it is refused
    /// with [`Error::Fenced`] and changes nothing. A larger output is refused with
    /// [`Error::Invalid`], and nothing is written. A second call replaces the first; the output
    /// stays after the job ends (until retention deletes the job), shown by `porter jobs show`
    /// and `GET /admin/jobs/{id}`, and read by jobs that depend on this one.
    pub async fn set_output(&self, output: &impl Serialize) -> Result<()> {
        let output = crate::job::to_json(output)
            .map_err(|e| Error::invalid("output", format!("does not serialize: {e}")))?;
        self.context.record_output(output).await
    }

    /// Records the job's progress (any JSON value, at most
    /// [`MAX_PROGRESS_BYTES`](crate::store::MAX_PROGRESS_BYTES) = 16 KiB as JSON, e.g.
    /// `{"done": 40, "total": 100}`). Cheap to call often: it keeps the value in memory and
    /// writes it at most once per [`PROGRESS_EVERY`] (1 s) per job, never once per call; the
    /// last value is written when the job ends, before its outcome. Writes are fenced like
    /// every worker-side write. A value over the cap is refused with [`Error::Invalid`] (and
    /// not kept).
    pub fn set_progress(&self, progress: &impl Serialize) -> Result<()> {
        let progress = crate::job::to_json(progress)
            .map_err(|e| Error::invalid("progress", format!("does not serialize: {e}")))?;
        self.context.record_progress(progress)
    }

    /// A job whose context records in memory only ([`JobContext::in_memory`]): for running a
    /// worker's `work` by hand, as [`crate::testing::work`] does.
    pub fn new(args: A, row: JobRow, cancel: CancellationToken) -> Self {
        let context = JobContext::in_memory(row.fence());
        Job {
            args,
            row,
            cancel,
            context,
        }
    }

    /// The outputs of the jobs this one waited for ([`crate::InsertOpts::depends_on`]), by
    /// id: each parent's id, kind, state and recorded output (`None` when it recorded none).
    /// Parents are kept while their children wait (retention skips them), so every parent is
    /// there. Empty for a job with no parents, and in [`crate::testing::work`].
    pub async fn parent_outputs(&self) -> Result<Vec<ParentOutput>> {
        self.context.parent_outputs().await
    }

    /// The job's context (shared by clones of this job).
    pub fn context(&self) -> &JobContext {
        &self.context
    }
}

/// One parent's output, as [`Job::parent_outputs`] gives it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ParentOutput {
    /// The parent's id.
    pub id: i64,
    /// Its kind.
    pub kind: String,
    /// Its state (completed, unless the child runs after any end).
    pub state: crate::job::JobState,
    /// What it recorded with [`Job::set_output`], if anything.
    pub output: Option<serde_json::Value>,
}

/// A running job's link to its row: it records the job's output and its throttled progress,
/// fenced on the attempt it runs. Built by the executor for each run; [`crate::testing::work`]
/// builds one that keeps what is recorded in memory instead, for the run only.
#[derive(Clone)]
pub struct JobContext {
    inner: Arc<ContextInner>,
}

impl fmt::Debug for JobContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobContext")
            .field("fence", &self.inner.fence)
            .finish_non_exhaustive()
    }
}

struct ContextInner {
    /// `None`: record in memory only (tests).
    store: Option<Arc<Store>>,
    fence: JobFence,
    progress: Mutex<Progress>,
    /// Held across each progress write, so that writes land in the order they took values.
    writing: tokio::sync::Mutex<()>,
    /// Cancelled when the run ends: the flusher stops.
    done: CancellationToken,
    every: Duration,
    /// The async runtime the context was made on, which runs the progress flusher: progress
    /// may be set from a thread of the job's own, outside any runtime (`tokio::spawn` panicked
    /// there, under the progress lock: review of 6 Dec).
    runtime: Option<tokio::runtime::Handle>,
}

impl ContextInner {
    /// The progress state; a panic while it was held (a bug) does not make every later use
    /// panic too, the executor's end of the run included.
    fn state(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(Default)]
struct Progress {
    latest: Option<serde_json::Value>,
    /// `latest` is not written yet.
    dirty: bool,
    /// A flusher task is scheduled.
    flusher: bool,
    last_write: Option<tokio::time::Instant>,
    output: Option<serde_json::Value>,
    writes: u64,
}

impl JobContext {
    /// A context for one run of the job `fence` names, recording through `store`.
    pub fn new(store: Arc<Store>, fence: JobFence) -> Self {
        Self::build(Some(store), fence, PROGRESS_EVERY)
    }

    /// A context that records in memory only (no database): for [`crate::testing::work`].
    pub fn in_memory(fence: JobFence) -> Self {
        Self::build(None, fence, PROGRESS_EVERY)
    }

    fn build(store: Option<Arc<Store>>, fence: JobFence, every: Duration) -> Self {
        JobContext {
            inner: Arc::new(ContextInner {
                store,
                fence,
                progress: Mutex::new(Progress::default()),
                writing: tokio::sync::Mutex::new(()),
                done: CancellationToken::new(),
                every,
                runtime: tokio::runtime::Handle::try_current().ok(),
            }),
        }
    }

    /// The latest output recorded through this context, if any.
    pub fn output(&self) -> Option<serde_json::Value> {
        self.inner.state().output.clone()
    }

    /// The latest progress recorded through this context (written or not yet), if any.
    pub fn progress(&self) -> Option<serde_json::Value> {
        self.inner.state().latest.clone()
    }

    /// How many progress writes this context made to the database.
    pub fn progress_writes(&self) -> u64 {
        self.inner.state().writes
    }

    async fn parent_outputs(&self) -> Result<Vec<ParentOutput>> {
        let Some(store) = &self.inner.store else {
            return Ok(Vec::new());
        };
        let parents = store.job_parent_outputs(self.inner.fence.id).await?;
        Ok(parents
            .into_iter()
            .map(|(p, output)| ParentOutput {
                id: p.id,
                kind: p.kind,
                state: p.state,
                output,
            })
            .collect())
    }

    async fn record_output(&self, output: serde_json::Value) -> Result<()> {
        let params = JobRecordParams {
            fence: self.inner.fence.clone(),
            output: Some(output),
            progress: None,
        };
        match &self.inner.store {
            Some(store) => store.job_output_record(params.clone()).await?,
            None => params.check()?,
        }
        self.inner.state().output = params.output;
        Ok(())
    }

    fn record_progress(&self, progress: serde_json::Value) -> Result<()> {
        JobRecordParams {
            fence: self.inner.fence.clone(),
            output: None,
            progress: Some(progress.clone()),
        }
        .check()?;
        let mut state = self.inner.state();
        state.latest = Some(progress);
        if self.inner.store.is_none() || self.inner.done.is_cancelled() {
            return Ok(());
        }
        state.dirty = true;
        if !state.flusher {
            // Without a runtime to run a flusher on, the value is written at the run's end.
            if let Some(runtime) = &self.inner.runtime {
                state.flusher = true;
                runtime.spawn(flush_progress(self.inner.clone()));
            }
        }
        Ok(())
    }

    /// Ends the run's recording: stops the flusher and writes the last progress if it is not
    /// written yet. The executor calls it when the job has stopped, before its outcome.
    pub async fn finish(&self) {
        self.inner.done.cancel();
        write_progress(&self.inner).await;
    }
}

/// Writes the latest progress once per interval while there is an unwritten one.
async fn flush_progress(inner: Arc<ContextInner>) {
    loop {
        let due = {
            let state = inner.state();
            state.last_write.map(|t| t + inner.every)
        };
        if let Some(due) = due {
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = inner.done.cancelled() => break,
            }
        }
        if inner.done.is_cancelled() {
            break;
        }
        write_progress(&inner).await;
        let mut state = inner.state();
        if !state.dirty || inner.done.is_cancelled() {
            state.flusher = false;
            return;
        }
    }
    inner.state().flusher = false;
}

/// Writes the latest progress if it is not written yet (fenced; a fenced-off write stops
/// further writes, a failed one leaves the value to the next write).
async fn write_progress(inner: &ContextInner) {
    let Some(store) = &inner.store else { return };
    let _writing = inner.writing.lock().await;
    let value = {
        let mut state = inner.state();
        if !state.dirty {
            return;
        }
        state.dirty = false;
        state.last_write = Some(tokio::time::Instant::now());
        state.writes += 1;
        state.latest.clone()
    };
    let result = store
        .job_output_record(JobRecordParams {
            fence: inner.fence.clone(),
            output: None,
            progress: value,
        })
        .await;
    match result {
        Ok(()) => {}
        Err(Error::Fenced { .. }) => inner.done.cancel(),
        Err(e) => {
            tracing::debug!(job_id = inner.fence.id, error = %e, "recording progress failed");
            inner.state().dirty = true;
        }
    }
}

/// How a job run can end other than in success.
#[derive(Debug)]
pub enum JobError {
    /// An ordinary failure: retried with backoff until attempts are used up.
    Failed {
        /// The message kept in the job's error history.
        message: String,
        /// An optional trace.
        trace: Option<String>,
    },
    /// Run again after this delay without using up an attempt.
    Snooze(Duration),
    /// Stop for good as cancelled, with a reason.
    Cancel(String),
    /// Stop for good as discarded (the job can never succeed), with a reason.
    Discard(String),
}

impl JobError {
    /// An ordinary failure with a message.
    pub fn msg(message: impl fmt::Display) -> Self {
        JobError::Failed {
            message: message.to_string(),
            trace: None,
        }
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for JobError {
    fn from(e: E) -> Self {
        JobError::msg(e)
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Failed { message, .. } => f.write_str(message),
            JobError::Snooze(d) => write!(f, "snoozed for {d:?}"),
            JobError::Cancel(r) => write!(f, "cancelled: {r}"),
            JobError::Discard(r) => write!(f, "discarded: {r}"),
        }
    }
}

/// Runs jobs of one kind, named by its args type.
///
/// ```
/// use porter::{Job, JobArgs, JobError, Worker};
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Resize { width: u32 }
/// impl JobArgs for Resize { const KIND: &'static str = "resize"; }
///
/// struct ResizeWorker;
/// #[async_trait::async_trait]
/// impl Worker<Resize> for ResizeWorker {
///     async fn work(&self, job: Job<Resize>) -> Result<(), JobError> {
///         if job.args.width == 0 { return Err(JobError::Discard("width 0".into())); }
///         Ok(())
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait Worker<A: JobArgs>: Send + Sync + 'static {
    /// Does the work. `Err` records a failure (or snooze, cancel, discard).
    async fn work(&self, job: Job<A>) -> std::result::Result<(), JobError>;

    /// How long one attempt may run (default 60 s), at most [`Worker::max_timeout`] (a longer
    /// one is cut to it, with a warning).
    fn timeout(&self, _job: &Job<A>) -> Duration {
        DEFAULT_JOB_TIMEOUT
    }

    /// Delay before the next attempt after a failure (default attempt^4 s ± 10 %).
    fn next_retry(&self, job: &Job<A>) -> Duration {
        default_backoff(job.row.attempt)
    }

    /// The longest [`Worker::timeout`] any job of this kind gets (default 60 s). The rescuer,
    /// which sees rows and not decoded args, treats a job of this kind that has been running
    /// longer than this plus [`crate::maintenance::STUCK_MARGIN`] as stuck, even in a live
    /// worker (a job that never yields cannot be stopped by its timeout), once that worker's
    /// next heartbeat shows it alive past that limit. Raise it together with `timeout`.
    fn max_timeout(&self) -> Duration {
        DEFAULT_JOB_TIMEOUT
    }
}

/// A claimed job whose args are decoded, ready to run.
pub struct StartedJob {
    /// How long it may run ([`Worker::timeout`]).
    pub timeout: Duration,
    /// The work; nothing runs until it is polled.
    pub work: futures::future::BoxFuture<'static, std::result::Result<(), JobError>>,
}

/// A worker with its args type erased, as the executor sees it.
pub trait AnyWorker: Send + Sync + 'static {
    /// Decodes the args once and prepares the run; undecodable args are a discard.
    fn start(
        &self,
        row: JobRow,
        cancel: CancellationToken,
        context: JobContext,
    ) -> std::result::Result<StartedJob, JobError>;
    /// The retry delay for this job after a failure.
    fn next_retry_for(&self, row: &JobRow) -> Duration;
    /// The longest timeout of the kind (see [`Worker::max_timeout`]).
    fn max_timeout(&self) -> Duration;
}

/// `worker`'s timeout for `job`. A panic in `timeout` costs only that call: the job runs
/// under the default timeout, within the kind's `max_timeout` (until 6 Dec it failed without
/// running, at every attempt; own review: the fallback over a shorter `max_timeout` was then
/// warned of as the worker's own timeout).
pub(crate) fn guarded_timeout<A: JobArgs, W: Worker<A> + ?Sized>(
    worker: &W,
    job: &Job<A>,
) -> Duration {
    crate::events::guarded(
        "Worker::timeout",
        |_| DEFAULT_JOB_TIMEOUT.min(worker.max_timeout()),
        || worker.timeout(job),
    )
}

struct Typed<A, W> {
    worker: Arc<W>,
    _args: PhantomData<fn() -> A>,
}

impl<A: JobArgs, W: Worker<A>> Typed<A, W> {
    fn decode(row: &JobRow) -> std::result::Result<A, JobError> {
        A::deserialize(&row.args).map_err(|e| {
            JobError::Discard(format!(
                "args cannot be decoded for kind {}: {}",
                A::KIND,
                describe_decode_error(&e)
            ))
        })
    }

    fn job(&self, row: &JobRow) -> std::result::Result<Job<A>, JobError> {
        Ok(Job {
            args: Self::decode(row)?,
            row: row.clone(),
            cancel: CancellationToken::new(),
            context: JobContext::in_memory(row.fence()),
        })
    }
}

/// Decodes a kind's args as its worker will (the check `porter enqueue` makes for the built-in
/// kinds); the error says what is wrong without quoting the args.
pub fn decode_args<A: JobArgs>(args: &serde_json::Value) -> std::result::Result<A, String> {
    A::deserialize(args).map_err(|e| {
        format!(
            "args cannot be decoded for kind {}: {}",
            A::KIND,
            describe_decode_error(&e)
        )
    })
}

/// What went wrong decoding args, without the values: serde's messages quote the offending
/// value (`invalid type: string "hunter2", expected u64`), and this message is logged, kept in
/// the job's errors and listed by the CLI and the dashboard, where args (which may hold
/// secrets) never go. Field names and the expected shape are kept; values are replaced by
/// their type, and messages of unknown shape (custom `Deserialize` impls) are withheld.
fn describe_decode_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    // serde's own shapes: "invalid type: X, expected Y", "invalid value: X, expected Y",
    // "unknown variant `X`, expected Y". Y comes from the code, X from the data.
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = text.strip_prefix(prefix) {
            if let Some(at) = rest.rfind(", expected ") {
                let found: Vec<&str> = rest[..at]
                    .split(' ')
                    .take_while(|w| !w.starts_with(['"', '`', '\'']))
                    .collect();
                return format!("{prefix}{}{}", found.join(" "), &rest[at..]);
            }
        }
    }
    if let Some(rest) = text.strip_prefix("unknown variant ") {
        if let Some(at) = rest.rfind(", expected ") {
            return format!("unknown variant{}", &rest[at..]);
        }
    }
    let safe = [
        "missing field ",
        "unknown field ",
        "duplicate field ",
        "invalid length ",
    ];
    if safe.iter().any(|p| text.starts_with(p)) {
        return text;
    }
    "the args do not match the kind's fields (details withheld: they may quote the args)"
        .to_string()
}

impl<A: JobArgs, W: Worker<A>> AnyWorker for Typed<A, W> {
    fn start(
        &self,
        row: JobRow,
        cancel: CancellationToken,
        context: JobContext,
    ) -> std::result::Result<StartedJob, JobError> {
        let args = Self::decode(&row)?;
        let job = Job {
            args,
            row,
            cancel,
            context,
        };
        let timeout = guarded_timeout(self.worker.as_ref(), &job);
        let worker = self.worker.clone();
        Ok(StartedJob {
            timeout,
            work: Box::pin(async move { worker.work(job).await }),
        })
    }

    fn max_timeout(&self) -> Duration {
        self.worker.max_timeout()
    }

    fn next_retry_for(&self, row: &JobRow) -> Duration {
        match self.job(row) {
            Ok(job) => self.worker.next_retry(&job),
            Err(_) => default_backoff(row.attempt),
        }
    }
}

/// Kinds and the workers that run them. A kind has at most one worker.
#[derive(Clone, Default)]
pub struct Workers {
    by_kind: BTreeMap<String, Arc<dyn AnyWorker>>,
}

impl fmt::Debug for Workers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workers")
            .field("kinds", &self.by_kind.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Workers {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the worker for `A::KIND`; a second worker for one kind is refused.
    pub fn add<A: JobArgs, W: Worker<A>>(&mut self, worker: W) -> Result<&mut Self> {
        validate_name("kind", A::KIND)?;
        if self.by_kind.contains_key(A::KIND) {
            return Err(Error::invalid(
                "worker",
                format!("kind {} already has a worker", A::KIND),
            ));
        }
        self.by_kind.insert(
            A::KIND.to_string(),
            Arc::new(Typed {
                worker: Arc::new(worker),
                _args: PhantomData::<fn() -> A>,
            }),
        );
        Ok(self)
    }

    /// The worker for a kind.
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn AnyWorker>> {
        self.by_kind.get(kind)
    }

    /// The kinds this registry runs, sorted.
    pub fn kinds(&self) -> Vec<String> {
        self.by_kind.keys().cloned().collect()
    }

    /// Whether a kind has a worker.
    pub fn contains(&self, kind: &str) -> bool {
        self.by_kind.contains_key(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode<A: serde::de::DeserializeOwned>(v: serde_json::Value) -> String {
        describe_decode_error(
            &serde_json::from_value::<A>(v)
                .err()
                .expect("a decode error"),
        )
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Args {
        ms: u64,
        mode: Mode,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    enum Mode {
        Fast,
    }

    #[test]
    fn decode_errors_keep_the_shape_and_drop_the_values() {
        use serde_json::json;
        assert_eq!(
            decode::<Args>(json!({"ms": "hunter2, expected x", "mode": "Fast"})),
            "invalid type: string, expected u64"
        );
        assert_eq!(
            decode::<Args>(json!({"ms": -7, "mode": "Fast"})),
            "invalid value: integer, expected u64"
        );
        assert_eq!(
            decode::<Args>(json!({"ms": 1.5, "mode": "Fast"})),
            "invalid type: floating point, expected u64"
        );
        assert_eq!(
            decode::<Args>(json!({"ms": 1, "mode": "hunter2"})),
            "unknown variant, expected `Fast`"
        );
        assert_eq!(
            decode::<Args>(json!({"mode": "Fast"})),
            "missing field `ms`"
        );
        assert_eq!(
            decode::<Args>(json!({"ms": 1, "mode": "Fast", "extra": 1})),
            "unknown field `extra`, expected `ms` or `mode`"
        );
        assert_eq!(
            decode::<Args>(json!("hunter2")),
            "invalid type: string, expected struct Args"
        );
        assert_eq!(
            decode::<Args>(json!(true)),
            "invalid type: boolean, expected struct Args"
        );
    }
}
