//! Helpers for testing an application that uses porter, with no container and no server: a
//! throwaway SQLite store in one line, every due job of a queue run until none is left, a
//! check that a job with given args was inserted, and one worker's `work` run on given args.
//!
//! ```
//! use porter::{Client, Job, JobArgs, JobError, JobState, Worker, Workers};
//!
//! #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
//! struct SendEmail { to: String }
//! impl JobArgs for SendEmail { const KIND: &'static str = "send_email"; }
//!
//! struct Mailer;
//! #[async_trait::async_trait]
//! impl Worker<SendEmail> for Mailer {
//!     async fn work(&self, job: Job<SendEmail>) -> Result<(), JobError> {
//!         if job.args.to.is_empty() { return Err(JobError::Discard("no recipient".into())); }
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> porter::Result<()> {
//! let db = porter::testing::sqlite_store().await?;
//! let client = Client::new(db.store.clone());
//! client.insert(&SendEmail { to: "ada@example.com".into() }, None).await?;
//! client.insert(&SendEmail { to: String::new() }, None).await?;
//! porter::testing::assert_inserted(db.store.as_ref(), &SendEmail { to: "ada@example.com".into() }).await;
//!
//! let mut workers = Workers::new();
//! workers.add(Mailer)?;
//! let outcomes = porter::testing::run_available(&db.store, workers, "default").await?;
//! let states: Vec<JobState> = outcomes.iter().map(|o| o.state).collect();
//! assert_eq!(states, [JobState::Completed, JobState::Discarded]);
//!
//! // One worker's work on given args, with a real job context and no runtime.
//! let result = porter::testing::work(&Mailer, SendEmail { to: String::new() }).await;
//! assert!(matches!(result, Err(JobError::Discard(_))));
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::job::{
    JobArgs, JobRow, JobState, DEFAULT_MAX_ATTEMPTS, DEFAULT_PRIORITY, DEFAULT_QUEUE,
};
use crate::runtime::{Runtime, RuntimeConfig, Shutdown};
use crate::store::{JobListParams, Store, MAX_LIST_LIMIT};
use crate::worker::{Job, JobError, Worker, Workers};

/// A store on a fresh SQLite file in its own temporary directory, removed on drop.
pub struct TestStore {
    /// The store.
    pub store: Arc<Store>,
    /// The URL that opens the same database (for a second store, or a child process).
    pub url: String,
    dir: PathBuf,
}

impl std::fmt::Debug for TestStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestStore").field("url", &self.url).finish()
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Opens a migrated store on a new SQLite file under the system's temporary directory.
pub async fn sqlite_store() -> Result<TestStore> {
    let dir = std::env::temp_dir().join(format!("porter-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
    let url = crate::store::sqlite_url(&dir.join("porter.db"));
    match crate::store::open(&url).await {
        Ok(store) => Ok(TestStore { store, url, dir }),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            Err(e)
        }
    }
}

/// How one job ended up after [`run_available`].
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The job's id.
    pub id: i64,
    /// Its kind.
    pub kind: String,
    /// Its state once the queue had nothing left to run: `completed`, `cancelled`,
    /// `discarded`, or `retryable` / `scheduled` when it failed or snoozed into the future.
    pub state: JobState,
    /// Attempts used.
    pub attempt: i32,
    /// The last error of its history, if any.
    pub error: Option<String>,
}

/// How often [`run_available`] looks whether the queue is drained.
const DRAIN_LOOK_EVERY: Duration = Duration::from_millis(10);
/// The longest [`run_available`] waits for a queue to drain before it gives up.
const DRAIN_LIMIT: Duration = Duration::from_secs(300);

/// Runs every due job of `queue` with `workers` (the real runtime: same claims, timeouts,
/// retries and fencing as in production; no maintenance services) until nothing of the queue
/// is due or running, including jobs those jobs insert and retries that come due at once.
/// Returns every job attempted meanwhile, in id order, with the state it was left in. Jobs of
/// kinds `workers` does not run are left as they are (not waited for), as a worker that does
/// not run their kind leaves them. A paused queue is an error at once ([`Error::Conflict`]):
/// nothing of it would run. Dropped before it returns (a test's own `timeout` around it), it
/// stops its runtime at once, as a second signal stops a worker: no worker is left behind.
pub async fn run_available(
    store: &Arc<Store>,
    workers: Workers,
    queue: &str,
) -> Result<Vec<Outcome>> {
    crate::job::validate_name("queue", queue)?;
    if store
        .queue_list()
        .await?
        .iter()
        .any(|q| q.name == queue && q.paused_at.is_some())
    {
        return Err(Error::Conflict(format!(
            "queue {queue} is paused: nothing of it runs until it is resumed"
        )));
    }
    let kinds = workers.kinds();
    // Each job's attempts before: every claim counts one more, and nothing counts one less,
    // so a job attempted here has more. Not the time of the attempts: with a test clock held
    // still (`open_with_clock`), an earlier call's attempts carried this call's start time
    // too, and were reported again; nor any change of the row: the claims make due jobs of
    // kinds nobody here runs available, without attempting them (review of 8 Dec).
    let before: HashMap<i64, i32> = queue_jobs(store.as_ref(), queue, Vec::new())
        .await?
        .iter()
        .map(|j| (j.id, j.attempt))
        .collect();
    let config = RuntimeConfig {
        queues: vec![(queue.to_string(), 10)],
        poll_interval: DRAIN_LOOK_EVERY,
        maintenance: false,
        ..RuntimeConfig::default()
    };
    let shutdown = Shutdown::new();
    let mut runtime = StopOnDrop {
        shutdown: shutdown.clone(),
        task: tokio::spawn(Runtime::new(store.clone(), workers, config).run(shutdown.clone())),
    };
    let deadline = tokio::time::Instant::now() + DRAIN_LIMIT;
    let drained = loop {
        if runtime.task.is_finished() {
            break Ok(());
        }
        match left_to_run(store.as_ref(), queue, &kinds).await {
            Ok(0) => break Ok(()),
            Ok(_) if tokio::time::Instant::now() >= deadline => {
                break Err(Error::Timeout(DRAIN_LIMIT));
            }
            Ok(_) => tokio::time::sleep(DRAIN_LOOK_EVERY).await,
            Err(e) => break Err(e),
        }
    };
    shutdown.soft.cancel();
    let ran = (&mut runtime.task)
        .await
        .map_err(|e| Error::Database(format!("the runtime task failed: {e}")))?;
    ran?;
    drained?;
    let mut outcomes: Vec<Outcome> = queue_jobs(store.as_ref(), queue, Vec::new())
        .await?
        .into_iter()
        .filter(|j| j.attempt > before.get(&j.id).copied().unwrap_or(0))
        .map(|j| Outcome {
            id: j.id,
            state: j.state,
            attempt: j.attempt,
            error: j.errors.last().map(|e| e.error.clone()),
            kind: j.kind,
        })
        .collect();
    outcomes.sort_by_key(|o| o.id);
    Ok(outcomes)
}

/// [`run_available`]'s runtime: stopped at once when the call is dropped before it returns,
/// as a second signal stops a worker (its running jobs are stopped and given back).
struct StopOnDrop {
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<Result<crate::runtime::RunReport>>,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.shutdown.soft.cancel();
        self.shutdown.hard.cancel();
    }
}

/// Jobs of the queue and of `kinds` that are running, available, or scheduled/retryable and
/// due.
async fn left_to_run(store: &Store, queue: &str, kinds: &[String]) -> Result<usize> {
    let states = vec![
        JobState::Available,
        JobState::Running,
        JobState::Scheduled,
        JobState::Retryable,
    ];
    let now = store.now().await?;
    let jobs = queue_jobs(store, queue, states).await?;
    Ok(jobs
        .iter()
        .filter(|j| kinds.contains(&j.kind))
        .filter(|j| {
            matches!(j.state, JobState::Available | JobState::Running) || j.scheduled_at <= now
        })
        .count())
}

async fn queue_jobs(store: &Store, queue: &str, states: Vec<JobState>) -> Result<Vec<JobRow>> {
    let mut all = Vec::new();
    let mut before_id = None;
    loop {
        let params = JobListParams {
            states: states.clone(),
            queue: Some(queue.to_string()),
            before_id,
            limit: Some(MAX_LIST_LIMIT),
            ..JobListParams::default()
        };
        let page = store.job_list(params).await?;
        let Some(last) = page.last() else {
            return Ok(all);
        };
        before_id = Some(last.id);
        all.extend(page);
    }
}

/// The unfinished jobs of `A`'s kind, with their decoded args, oldest first. Jobs whose args
/// do not decode as `A` are left out.
pub async fn inserted<A: JobArgs>(store: &Store) -> Result<Vec<(JobRow, A)>> {
    let mut out = Vec::new();
    let mut before_id = None;
    loop {
        let params = JobListParams {
            states: JobState::ALL
                .into_iter()
                .filter(|s| !s.is_final())
                .collect(),
            kind: Some(A::KIND.to_string()),
            before_id,
            limit: Some(MAX_LIST_LIMIT),
            ..JobListParams::default()
        };
        let page = store.job_list(params).await?;
        let Some(last) = page.last() else { break };
        before_id = Some(last.id);
        for row in page {
            if let Ok(args) = A::deserialize(&row.args) {
                out.push((row, args));
            }
        }
    }
    out.reverse();
    Ok(out)
}

/// Panics unless an unfinished job of `A`'s kind with exactly these args is in the store; the
/// message lists the args of the jobs of that kind that are there.
pub async fn assert_inserted<A: JobArgs + PartialEq + std::fmt::Debug>(store: &Store, args: &A) {
    let jobs = inserted::<A>(store).await.expect("list the inserted jobs");
    if !jobs.iter().any(|(_, a)| a == args) {
        let found: Vec<&A> = jobs.iter().map(|(_, a)| a).collect();
        panic!(
            "no unfinished {} job with args {args:?}; found {found:?}",
            A::KIND
        );
    }
}

/// Runs `worker.work` once on `args` with a real job context (a row as the runtime would
/// claim it after an insert of those args: the kind's own [`JobArgs::insert_opts`] (queue,
/// priority, attempts allowed, keys, metadata), attempt 1, state running; a cancel token the
/// worker's timeout cancels) and no runtime or database. The args go through JSON as an insert
/// and a claim take them: what an insert refuses (NaN, a NUL character, args over 1 MiB or
/// nested too deep, bad options) is a discard here, and the worker sees what the JSON keeps.
/// A run past [`Worker::timeout`] (capped at [`Worker::max_timeout`], as the runtime caps it)
/// is cancelled and answers a failure.
pub async fn work<A: JobArgs, W: Worker<A>>(
    worker: &W,
    args: A,
) -> std::result::Result<(), JobError> {
    // The args and options as an insert takes them (refused as an insert refuses them) and
    // the args as the runtime decodes them (a field the JSON does not keep comes back as its
    // default). Until 6 Dec only NaN was refused, and the row had the default queue,
    // priority and attempts whatever the kind's own options (review of 6 Dec).
    let params = crate::client::insert_params(&args, None)
        .map_err(|e| JobError::Discard(format!("args are refused at insert: {e}")))?;
    let args: A = crate::worker::decode_args(&params.args).map_err(JobError::Discard)?;
    let row = JobRow {
        queue: params.queue,
        priority: params.priority,
        max_attempts: params.max_attempts,
        unique_key: params.unique_key,
        metadata: params.metadata,
        concurrency_key: params.concurrency_key,
        sequence_key: params.sequence_key,
        ..running_row(A::KIND, params.args)
    };
    let cancel = CancellationToken::new();
    let job = Job::new(args, row, cancel.clone());
    // Capped as the runtime caps it (`runtime::executor`): a run the runtime stops at the
    // kind's max_timeout must not pass here.
    let timeout = crate::worker::guarded_timeout(worker, &job).min(worker.max_timeout());
    match tokio::time::timeout(timeout, worker.work(job)).await {
        Ok(result) => result,
        Err(_) => {
            cancel.cancel();
            Err(JobError::msg(format!("job timed out after {timeout:?}")))
        }
    }
}

/// The row of a job running its first attempt, as [`work`] gives a worker.
pub(crate) fn running_row(kind: &str, args: serde_json::Value) -> JobRow {
    let now = Utc::now();
    JobRow {
        id: 0,
        kind: kind.to_string(),
        queue: DEFAULT_QUEUE.to_string(),
        args,
        state: JobState::Running,
        priority: DEFAULT_PRIORITY,
        attempt: 1,
        max_attempts: DEFAULT_MAX_ATTEMPTS,
        errors: Vec::new(),
        created_at: now,
        scheduled_at: now,
        attempted_at: Some(now),
        finalized_at: None,
        attempted_by: Some("porter-testing".to_string()),
        unique_key: None,
        metadata: serde_json::json!({}),
        output: None,
        progress: None,
        concurrency_key: None,
        sequence_key: None,
        unreadable: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Tick {}

    impl JobArgs for Tick {
        const KIND: &'static str = "tick";
    }

    /// A kind of 5 s at most whose `timeout` panics.
    struct Short;

    #[async_trait::async_trait]
    impl Worker<Tick> for Short {
        async fn work(&self, _: Job<Tick>) -> std::result::Result<(), JobError> {
            Ok(())
        }
        fn timeout(&self, _: &Job<Tick>) -> Duration {
            panic!("no timeout")
        }
        fn max_timeout(&self) -> Duration {
            Duration::from_secs(5)
        }
    }

    /// A panicking `timeout` falls back to the default timeout within the kind's
    /// `max_timeout` (over a shorter one the runtime warned that the worker's own timeout
    /// exceeded it: own review of 6 Dec), and [`work`] runs the job as the runtime does.
    #[tokio::test]
    async fn a_panicking_timeout_falls_back_within_the_kinds_max_timeout() {
        let job = Job::new(
            Tick {},
            running_row("tick", serde_json::json!({})),
            CancellationToken::new(),
        );
        assert_eq!(
            crate::worker::guarded_timeout(&Short, &job),
            Duration::from_secs(5)
        );
        assert!(work(&Short, Tick {}).await.is_ok());
    }

    /// The URL [`sqlite_store`] opens names its file whatever the temporary directory's name
    /// holds (until 6 Dec it was built by hand: a `%41` opened another file, a `?` was refused
    /// as an option).
    #[tokio::test]
    async fn a_sqlite_url_names_its_file_whatever_its_name_holds() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["x%41y", "a?b=c", "d#e", "f g"] {
            let path = dir.path().join(name).join("porter.db");
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let url = crate::store::sqlite_url(&path);
            assert_eq!(crate::store::sqlite_file(&url), Some(path.clone()), "{url}");
            crate::store::open(&url).await.expect(&url);
            assert!(path.exists(), "{url} opened {}", path.display());
        }
    }

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Mail {
        to: String,
    }

    /// A kind with options of its own: one attempt, its own queue and priority.
    impl JobArgs for Mail {
        const KIND: &'static str = "mail";
        fn insert_opts(&self) -> crate::InsertOpts {
            crate::InsertOpts {
                queue: Some("mail".into()),
                priority: Some(2),
                max_attempts: Some(1),
                ..Default::default()
            }
        }
    }

    /// Discards on its job's last attempt, and answers the row it was given.
    struct LastTry;

    #[async_trait::async_trait]
    impl Worker<Mail> for LastTry {
        async fn work(&self, job: Job<Mail>) -> std::result::Result<(), JobError> {
            let row = &job.row;
            if (row.queue.as_str(), row.priority) != ("mail", 2) {
                return Err(JobError::msg(format!("row {} {}", row.queue, row.priority)));
            }
            if job.attempt() >= row.max_attempts {
                return Err(JobError::Discard("last attempt".into()));
            }
            Ok(())
        }
    }

    /// [`work`] gives the worker the row an insert of those args makes (the kind's own
    /// `insert_opts`: queue, priority, attempts), and refuses what an insert refuses (a NUL
    /// character) as a discard. Until 6 Dec it gave every job the default queue, priority and
    /// attempts, so a worker that acted on its last attempt behaved otherwise here than in the
    /// runtime, and args no insert takes passed (review of 6 Dec).
    #[tokio::test]
    async fn work_gives_the_row_an_insert_makes_and_refuses_what_it_refuses() {
        let last = work(&LastTry, Mail { to: "a@b".into() }).await;
        assert!(
            matches!(&last, Err(JobError::Discard(m)) if m == "last attempt"),
            "{last:?}"
        );
        let refused = work(&LastTry, Mail { to: "a\0b".into() }).await;
        assert!(
            matches!(&refused, Err(JobError::Discard(m)) if m.contains("NUL")),
            "{refused:?}"
        );
    }
}
