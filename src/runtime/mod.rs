//! The worker runtime: a producer per queue claims jobs into a small local queue ahead of its
//! free slots, the executor runs them (decode, timeout, panics), the completer records
//! outcomes (completions batched, off the slot), and the maintenance services keep the queue
//! healthy. Shutdown is passed in.

mod canceller;
mod completer;
mod executor;
mod producer;
mod slot;

use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::maintenance::{
    self, PeriodicEnqueuer, PeriodicJob, Rescuer, RescuerConfig, RetentionCleaner,
};
use crate::store::{JobReleaseParams, Store, WorkerRegisterParams};
use crate::worker::Workers;

pub use crate::events::{AttemptEnd, AttemptEnded, JobEvents, NoEvents};
pub use executor::{ErrorHandler, LogErrors, PARENT_RAN_AGAIN};
pub use producer::{GIVEN_BACK, HOLD_FACTOR, MAX_WAIT, QUEUE_CHANGED, QUEUE_CHANGES_UNREAD};

/// Default fallback poll interval (wake-ups normally come sooner).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Default soft shutdown timeout.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// Default lease: a worker silent for this long is lost and its jobs are rescued.
pub const DEFAULT_LEASE: Duration = crate::store::DEFAULT_LEASE;
/// Most jobs claimed in one statement.
pub const MAX_CLAIM: usize = 1000;
/// The first wait before a registration that lost its connection is tried again; it doubles
/// up to [`REGISTER_RETRY_LONGEST`].
const REGISTER_RETRY_FIRST: Duration = Duration::from_millis(200);
/// The longest wait between two tries of a registration that lost its connection.
const REGISTER_RETRY_LONGEST: Duration = Duration::from_secs(5);

/// How a worker process runs.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Queues and their concurrency (jobs run at once).
    pub queues: Vec<(String, usize)>,
    /// Fallback poll interval.
    pub poll_interval: Duration,
    /// How long running jobs may finish after a shutdown signal before they are cancelled.
    pub shutdown_timeout: Duration,
    /// Lease: the worker heartbeats every third of it; silent workers lose their jobs.
    pub lease: Duration,
    /// Periodic jobs this process schedules (with every other process, one job per slot).
    pub periodic: Vec<PeriodicJob>,
    /// Run the maintenance services (rescuer, retention, periodic) in this process.
    pub maintenance: bool,
    /// Retention and the other maintenance settings.
    pub retention: maintenance::RetentionConfig,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            queues: vec![(crate::job::DEFAULT_QUEUE.to_string(), 100)],
            poll_interval: DEFAULT_POLL_INTERVAL,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            lease: DEFAULT_LEASE,
            periodic: Vec::new(),
            maintenance: true,
            retention: maintenance::RetentionConfig::default(),
        }
    }
}

/// The concurrencies a queue may have, as `porter worker --queues` takes them.
const CONCURRENCY: std::ops::RangeInclusive<usize> = 1..=10_000;

impl RuntimeConfig {
    /// Refuses what `porter worker` refuses, before anything runs: a bad or repeated queue
    /// name, a concurrency outside 1..=10000 (none claims nothing, and a huge one overflows
    /// the permits), a lease under 1 s (its heartbeats would spin), a zero poll interval, a
    /// lease, shutdown timeout or poll interval past 1,000 years, a retention config
    /// [`maintenance::RetentionConfig::check`] refuses, and a periodic job that would fail at
    /// every slot, or whose name another has (they would share one record of slots).
    pub(crate) fn check(&self) -> Result<()> {
        for (i, job) in self.periodic.iter().enumerate() {
            job.check()?;
            if self.periodic[..i].iter().any(|j| j.name == job.name) {
                return Err(Error::invalid(
                    "periodic job",
                    format!("{:?} is named twice", job.name),
                ));
            }
        }
        for (i, (queue, n)) in self.queues.iter().enumerate() {
            crate::job::validate_name("queue", queue)?;
            if self.queues[..i].iter().any(|(q, _)| q == queue) {
                return Err(Error::invalid(
                    "queues",
                    format!("queue {queue} is listed twice"),
                ));
            }
            if !CONCURRENCY.contains(n) {
                return Err(Error::invalid(
                    "queues",
                    format!("queue {queue}: concurrency {n} must be 1..10000"),
                ));
            }
        }
        if self.lease < Duration::from_secs(1) {
            return Err(Error::invalid("lease", "must be at least 1s"));
        }
        if self.poll_interval.is_zero() {
            return Err(Error::invalid("poll_interval", "must be more than 0"));
        }
        // Longer is "never" to porter, which uses no duration past 1,000 years; these went
        // into the clock's arithmetic and panicked at the shutdown (review of 6 Dec).
        for (what, d) in [
            ("lease", self.lease),
            ("shutdown_timeout", self.shutdown_timeout),
            ("poll_interval", self.poll_interval),
        ] {
            if d > crate::store::MAX_DURATION {
                return Err(Error::invalid(what, "must be at most 1000 years"));
            }
        }
        self.retention.check()
    }
}

/// Parses `default=100,critical=10` (a bare name gets concurrency 100).
pub fn parse_queues(spec: &str) -> Result<Vec<(String, usize)>> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, n) = match part.split_once('=') {
            Some((name, n)) => {
                let n: usize = n
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| CONCURRENCY.contains(n))
                    .ok_or_else(|| {
                        Error::invalid("queues", format!("{part:?}: concurrency must be 1..10000"))
                    })?;
                (name.trim(), n)
            }
            None => (part, 100),
        };
        crate::job::validate_name("queue", name)?;
        if out.iter().any(|(q, _)| q == name) {
            return Err(Error::invalid(
                "queues",
                format!("queue {name} is listed twice"),
            ));
        }
        out.push((name.to_string(), n));
    }
    if out.is_empty() {
        return Err(Error::invalid(
            "queues",
            "give at least one queue, e.g. default=100",
        ));
    }
    Ok(out)
}

/// Two-stage shutdown: `soft` stops claiming and lets running jobs finish for the shutdown
/// timeout; `hard` (a second signal) cuts that wait short, and writes that keep failing are
/// given up on instead of retried (their jobs stay `running` for a rescuer to put back, which
/// at-least-once allows). Cancelling `hard` alone does both. A soft shutdown still going twice
/// the shutdown timeout after `soft` (at least [`GIVE_UP_FLOOR`]) gives up on failing writes as
/// `hard` does, so that a database refusing writes cannot hold it for minutes of retries.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    /// Stop claiming; wait for running jobs.
    pub soft: CancellationToken,
    /// Stop waiting: cancel running jobs now, and retry no failing write.
    pub hard: CancellationToken,
}

impl Shutdown {
    /// A fresh pair of tokens.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Runs one of the runtime's own tasks so that a panic in it (a bug, a driver's) is not lost
/// with the task: it is logged and recorded in `failed`, which shuts the runtime down (run
/// answers [`Error::Panicked`]). Without it the queue, heartbeat or service it ran stopped
/// silently while the worker went on as if it still ran.
fn supervised<F>(what: String, failed: Failed, task: F) -> impl std::future::Future<Output = ()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    use futures::FutureExt;
    async move {
        if let Err(payload) = std::panic::AssertUnwindSafe(task).catch_unwind().await {
            let message = crate::events::panic_message(&*payload);
            tracing::error!(task = %what, panic = %message, "a worker task panicked; shutting down");
            failed.record(format!("{what}: {message}"));
        }
    }
}

/// The first panic of the runtime's own tasks (see [`supervised`]).
#[derive(Clone, Default)]
struct Failed {
    first: Arc<std::sync::Mutex<Option<String>>>,
    token: CancellationToken,
}

impl Failed {
    fn record(&self, message: String) {
        self.first
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(message);
        self.token.cancel();
    }

    fn error(&self) -> Option<Error> {
        let first = self.first.lock().unwrap_or_else(|p| p.into_inner());
        first.clone().map(Error::Panicked)
    }
}

/// Starts every maintenance service of a worker process on `tracker`, until `stop`.
fn spawn_maintenance(
    tracker: &TaskTracker,
    ctx: &Ctx,
    events: &Arc<dyn JobEvents>,
    stop: CancellationToken,
    failed: &Failed,
) {
    let (store, config, identity) = (&ctx.store, &ctx.config, &ctx.identity);
    let rescuer = Rescuer::new(
        store.clone(),
        RescuerConfig {
            worker: Some(identity.id.clone()),
            // Its own pass leaves the jobs whose outcome this worker is still writing: a first
            // try held up as the database comes back is not yet failing, so no heartbeat
            // says so (review of 7 Dec).
            ending: Some(maintenance::EndingJobs(Arc::new({
                let owned = ctx.owned.clone();
                move || owned.ending_jobs()
            }))),
            ..RescuerConfig::for_workers(config.lease, &ctx.workers)
        },
    )
    .with_events(events.clone());
    tracker.spawn(supervised(
        "rescuer".into(),
        failed.clone(),
        rescuer.run(stop.clone()),
    ));
    let cleaner = RetentionCleaner::new(store.clone(), config.retention.clone());
    tracker.spawn(supervised(
        "retention".into(),
        failed.clone(),
        cleaner.run(stop.clone()),
    ));
    if !config.periodic.is_empty() {
        let enqueuer =
            PeriodicEnqueuer::new(store.clone(), config.periodic.clone(), identity.id.clone());
        tracker.spawn(supervised(
            "periodic jobs".into(),
            failed.clone(),
            enqueuer.run(stop),
        ));
    }
}

/// A worker process's identity, as registered in `porter_workers`.
#[derive(Debug, Clone)]
pub struct WorkerIdentity {
    /// Unique per process start.
    pub id: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: i64,
}

impl WorkerIdentity {
    /// This process, with a fresh random suffix.
    pub fn current() -> Self {
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        let pid = std::process::id() as i64;
        let id = format!("{host}-{pid}-{:08x}", fastrand::u32(..));
        WorkerIdentity { id, host, pid }
    }
}

/// Everything the tasks of one runtime share.
pub(crate) struct Ctx {
    pub store: Arc<Store>,
    /// What each heartbeat records: this worker, its lease and its stuck limits.
    pub registration: WorkerRegisterParams,
    pub workers: Workers,
    pub identity: WorkerIdentity,
    pub config: RuntimeConfig,
    /// Cancelled on the first shutdown signal: stop claiming.
    pub stop_claiming: CancellationToken,
    /// Cancelled when running jobs must stop.
    pub stop_jobs: CancellationToken,
    /// Cancelled on a hard shutdown, or once a soft one has taken twice its timeout (at least
    /// [`GIVE_UP_FLOOR`]): failing writes are given up on rather than retried.
    pub hard: CancellationToken,
    /// Running jobs.
    pub jobs: TaskTracker,
    pub completer: completer::Completer,
    pub errors: Arc<dyn ErrorHandler>,
    /// Told how each attempt ended.
    pub events: Arc<dyn JobEvents>,
    /// Running jobs, for cancel requests.
    pub running: canceller::RunningJobs,
    /// When this worker's heartbeat was last recorded.
    pub last_heartbeat: tokio::sync::watch::Sender<tokio::time::Instant>,
    /// The jobs this worker holds (claimed, outcome not yet written), and those whose outcome
    /// it gave up on until a reconcile settles them.
    pub owned: Arc<Owned>,
    /// Held (shared) by claims until their jobs are in `owned`, and (exclusively) by the
    /// reconcile while it compares: so it never mistakes a job being claimed for a stray.
    pub claiming: tokio::sync::RwLock<()>,
    /// The strays each recent reconcile found: a claim that let `claiming` go before its jobs
    /// were known asks which of them a reconcile took for strays meanwhile (see `producer`).
    pub strays: Strays,
    /// Jobs the shutdown stopped that were still there a moment later: they block their
    /// threads. Left `running` and held (the reconcile leaves them), and the worker is not
    /// deregistered, so that no rescuer puts them back before its lease has passed.
    pub still_running: std::sync::atomic::AtomicU64,
    /// The database's time as the last reconcile that went through began to look.
    reconciled: std::sync::Mutex<Option<DateTime<Utc>>>,
    /// Each producer's standing order for the completer, by queue (see [`producer::Feed`]).
    feeds: std::sync::Mutex<std::collections::HashMap<String, Arc<producer::Feed>>>,
}

/// How many reconciles [`Strays`] remembers: a claim that ran on without the claim lock for
/// longer than this many reconciles gives back all it took.
const STRAY_LOG: usize = 64;

/// The strays (id, attempt) each of the last [`STRAY_LOG`] reconciles found, by its number.
#[derive(Default)]
pub(crate) struct Strays {
    log: std::sync::Mutex<StrayLog>,
}

#[derive(Default)]
struct StrayLog {
    /// The number the next reconcile gets.
    next: u64,
    /// The last reconciles' strays, by number, oldest first.
    recent: std::collections::VecDeque<(u64, Vec<(i64, i32)>)>,
}

/// The jobs reconciles took for strays since a claim began (see [`Strays::taken_since`]).
pub(crate) struct Taken {
    /// The log no longer reaches back that far: any may have been.
    all: bool,
    jobs: std::collections::HashSet<(i64, i32)>,
}

impl Taken {
    pub(crate) fn contains(&self, id: i64, attempt: i32) -> bool {
        self.all || self.jobs.contains(&(id, attempt))
    }
}

impl Strays {
    /// The number the next reconcile gets; taken under `claiming` (shared).
    pub(crate) fn mark(&self) -> u64 {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).next
    }

    /// A reconcile's strays; recorded under `claiming` (exclusive).
    fn record(&self, strays: impl Iterator<Item = (i64, i32)>) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let n = log.next;
        log.next += 1;
        log.recent.push_back((n, strays.collect()));
        if log.recent.len() > STRAY_LOG {
            log.recent.pop_front();
        }
    }

    /// What reconciles numbered `since` (a [`Strays::mark`]) or later took for strays; `None`
    /// when none has run since. Asked under `claiming` (shared).
    pub(crate) fn taken_since(&self, since: u64) -> Option<Taken> {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if log.next == since {
            return None;
        }
        let all = log.recent.front().is_none_or(|(n, _)| *n > since);
        let jobs = log
            .recent
            .iter()
            .filter(|(n, _)| *n >= since)
            .flat_map(|(_, strays)| strays.iter().copied())
            .collect();
        Some(Taken { all, jobs })
    }
}

/// The jobs a worker holds, by (id, attempt): from its claim until their outcome is written,
/// fenced off, or given up on; and those whose outcome it gave up on, until a reconcile has put
/// them back or found them no longer running under this worker.
#[derive(Debug, Default)]
pub(crate) struct Owned {
    jobs: std::sync::Mutex<Held>,
    /// The outcome writes failing meanwhile, being retried.
    pub(crate) retrying: Arc<Retrying>,
}

/// Outcome writes (completions, failures, snoozes, give-backs) failing and being retried: a
/// database outage, a write lock held long. Until 7 Dec the heartbeat after an outage (retried
/// every second) landed before them, and a stuck pass in the second or two before the
/// completion (retried every 2 s by then) took the completed job and ran it again. Now each
/// heartbeat first asks them to try again at once and waits a moment for them
/// ([`Retrying::flush_until`]); one written while some still fail says so
/// ([`WorkerRegisterParams::unsteady`]: stuck passes wait a moment, as after a late
/// heartbeat), and asks them again once it is through. A write's tries keep their own clock
/// ([`OutcomeTries`]): one asked for before its next is due does not count, where 7976741
/// counted them, and an outage of 10 to 70 s used them up.
#[derive(Debug)]
pub(crate) struct Retrying {
    /// Writes failing, from their first failure until written, fenced off or given up on.
    count: tokio::sync::watch::Sender<usize>,
    /// Asks to try again now, counted: a write that failed tries again at once when one came
    /// after its try started, so an ask made while a try is under way is not lost.
    asks: tokio::sync::watch::Sender<u64>,
}

impl Default for Retrying {
    fn default() -> Self {
        Retrying {
            count: tokio::sync::watch::channel(0).0,
            asks: tokio::sync::watch::channel(0).0,
        }
    }
}

/// Counts one failing write while it lives ([`Retrying::enter`]).
pub(crate) struct RetryingWrite(Arc<Retrying>);

impl Drop for RetryingWrite {
    fn drop(&mut self) {
        self.0.count.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Retrying {
    /// Counts a write as failing until the answer is dropped (written, fenced off or given up).
    pub(crate) fn enter(self: &Arc<Self>) -> RetryingWrite {
        self.count.send_modify(|n| *n += 1);
        RetryingWrite(self.clone())
    }

    /// Whether some writes are failing.
    fn failing(&self) -> bool {
        *self.count.borrow() > 0
    }

    /// Asks the failing writes to try again now.
    fn ask(&self) {
        self.asks.send_modify(|n| *n += 1);
    }

    /// Waits until `until`; from `asking` on, while some writes are failing, asks them to try
    /// again every [`FLUSH_ASK`], and returns early once none is left failing. Asked once, a
    /// write whose try failed just before the database came back slept its 2 s out, and the
    /// heartbeat went first after all. With `asking` at `until`, it only waits.
    async fn flush_until(&self, asking: tokio::time::Instant, until: tokio::time::Instant) {
        tokio::time::sleep_until(asking).await;
        let mut count = self.count.subscribe();
        if *count.borrow_and_update() == 0 {
            tokio::time::sleep_until(until).await;
            return;
        }
        loop {
            let now = tokio::time::Instant::now();
            if now >= until {
                return;
            }
            self.ask();
            let wait = (until - now).min(FLUSH_ASK);
            if let Ok(Ok(_)) = tokio::time::timeout(wait, count.wait_for(|n| *n == 0)).await {
                return;
            }
        }
    }
}

/// How long before a heartbeat is due the worker starts asking failing outcome writes to try
/// again (a sixth of the lease when shorter), for them to land before it; not while its
/// heartbeats fail. The wait is the end
/// of the heartbeat's own, so heartbeats keep their pace and are not taken for late (7976741
/// waited after the pace, and with a lease of 6 s or less every heartbeat came late while a
/// write kept failing).
pub const HEARTBEAT_FLUSH: Duration = Duration::from_secs(1);

/// How often a heartbeat's wait for failing outcome writes asks them to try again.
const FLUSH_ASK: Duration = Duration::from_millis(100);

/// How many times an outcome write is tried while the database is unreachable, backing off
/// from 50 ms to 2 s between tries (about 70 s when each try fails at once), before the worker
/// gives it up and its reconcile puts the job back. Tries a heartbeat asks for are extra.
pub const OUTCOME_TRIES: u32 = 40;

/// An outcome write's tries on their own clock: each is due a delay after the one before
/// (50 ms, doubling up to 2 s), and only a try made once it is due counts against
/// [`OUTCOME_TRIES`]; the extra ones a heartbeat asks for in between do not.
pub(crate) struct OutcomeTries {
    retrying: Arc<Retrying>,
    counted: u32,
    due: tokio::time::Instant,
    delay: Duration,
    /// The heartbeats' asks when the last try began: one made during the try is not lost.
    seen: u64,
}

impl OutcomeTries {
    pub(crate) fn new(retrying: &Arc<Retrying>) -> Self {
        OutcomeTries {
            retrying: retrying.clone(),
            counted: 0,
            due: tokio::time::Instant::now(),
            delay: Duration::from_millis(50),
            seen: 0,
        }
    }

    /// A try starts now: counted when it is due, and the next is due a delay later.
    pub(crate) fn start(&mut self) {
        self.seen = *self.retrying.asks.borrow();
        let now = tokio::time::Instant::now();
        if now >= self.due {
            self.counted += 1;
            self.due = now + self.delay;
            self.delay = (self.delay * 2).min(Duration::from_secs(2));
        }
    }

    /// Whether another try may follow a failed one.
    pub(crate) fn left(&self) -> bool {
        self.counted < OUTCOME_TRIES
    }

    /// After a failed try: at once if a heartbeat asked since it began, otherwise when the
    /// next counted try is due, when asked, or when `hard` is cancelled.
    pub(crate) async fn pause(&self, hard: &CancellationToken) {
        let mut asks = self.retrying.asks.subscribe();
        if *asks.borrow_and_update() != self.seen {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(self.due) => {}
            _ = hard.cancelled() => {}
            _ = asks.changed() => {}
        }
    }
}

#[derive(Debug, Default)]
struct Held {
    /// Claimed, outcome not yet written.
    running: std::collections::HashSet<(i64, i32)>,
    /// Of `running`, those whose handler has ended: their outcome is being written.
    ending: std::collections::HashSet<(i64, i32)>,
    /// Outcome given up on: perhaps still `running` here, however long ago it was claimed;
    /// `true` when its handler may have run (a give-back of a job claimed ahead was not). The
    /// only strays that may have started: any other was claimed by a claim whose reply was
    /// lost or came late, and never handed to a handler.
    given_up: std::collections::HashMap<(i64, i32), bool>,
    /// A reconcile that looked at all failed: the next one looks at all again.
    look_again: bool,
}

/// What a job `running` under this worker is to the reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holding {
    Held,
    /// Not held: a stray, to put back. `started` when its outcome was given up on after its
    /// handler may have run.
    Stray {
        started: bool,
    },
}

impl Owned {
    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn insert_all(&self, jobs: impl IntoIterator<Item = (i64, i32)>) {
        self.held().running.extend(jobs);
    }

    /// Jobs whose outcome was written or fenced off: no longer held, and no stray.
    pub(crate) fn remove_all(&self, jobs: &[(i64, i32)]) {
        let mut held = self.held();
        for job in jobs {
            held.running.remove(job);
            held.ending.remove(job);
        }
    }

    /// A held job whose handler has ended: its outcome is being written from now on.
    pub(crate) fn ending(&self, id: i64, attempt: i32) {
        let mut held = self.held();
        if held.running.contains(&(id, attempt)) {
            held.ending.insert((id, attempt));
        }
    }

    /// A job marked ending whose outcome will not be written after all (its recording
    /// panicked): given up, as [`Owned::give_up`] does, if it is still held.
    pub(crate) fn give_up_if_ending(&self, job: (i64, i32), started: bool) {
        let mut held = self.held();
        if held.ending.remove(&job) && held.running.remove(&job) {
            held.given_up.insert(job, started);
        }
    }

    /// The held jobs whose outcome is being written, as (id, attempt).
    pub(crate) fn ending_jobs(&self) -> Vec<(i64, i32)> {
        self.held().ending.iter().copied().collect()
    }

    /// Jobs whose outcome was given up on: no longer held, and perhaps still `running` here,
    /// for the reconcile to put back, as `started` (their handler may have run) or not. The
    /// next reconcile looks at all of this worker's running jobs, not only those claimed
    /// lately. (Moved in one step, so that a reconcile never finds such a job neither held nor
    /// given up, which it would take for a claim's.)
    pub(crate) fn give_up(&self, jobs: &[(i64, i32)], started: bool) {
        let mut held = self.held();
        for job in jobs {
            held.running.remove(job);
            held.ending.remove(job);
            held.given_up.insert(*job, started);
        }
    }

    /// Whether a reconcile that looked at all failed since the last one (clearing it), and the
    /// jobs given up on so far.
    fn take_look_again(&self) -> (bool, Vec<(i64, i32)>) {
        let mut held = self.held();
        let again = std::mem::take(&mut held.look_again);
        (again, held.given_up.keys().copied().collect())
    }

    fn look_again(&self) {
        self.held().look_again = true;
    }

    fn holding(&self, id: i64, attempt: i32) -> Holding {
        let held = self.held();
        if held.running.contains(&(id, attempt)) {
            Holding::Held
        } else {
            let started = held.given_up.get(&(id, attempt)).copied().unwrap_or(false);
            Holding::Stray { started }
        }
    }

    /// Jobs given up on that are no longer `running` here at that attempt: put back, or
    /// found ended or rescued.
    fn settled(&self, jobs: impl IntoIterator<Item = (i64, i32)>) {
        let mut held = self.held();
        for job in jobs {
            held.given_up.remove(&job);
        }
    }

    /// The ids of the jobs it holds.
    pub(crate) fn ids(&self) -> Vec<i64> {
        self.held().running.iter().map(|(id, _)| *id).collect()
    }

    /// How many jobs it holds.
    pub(crate) fn len(&self) -> usize {
        self.held().running.len()
    }
}

/// The error kept in the history of a job the reconcile put back.
const RECONCILED: &str = "running under this worker, which was not running it; put back";

/// Reconciles what the database says this worker runs with what it really runs (issue 11.9,
/// 11.10): jobs `running` under its id that it does not hold (a claim whose reply was lost
/// or came late, an outcome it gave up recording) are put back (fenced, no attempt used),
/// instead of waiting for stuck rescue. Returns how many it put back. Only a job whose outcome
/// was given up on may have started; the others are put back as never started.
///
/// Unless `all` (at shutdown) or an outcome was given up on and not yet settled, it looks only
/// at jobs claimed since two leases before the last reconcile that went through: a lost claim
/// reply makes a stray from its claim on, and one claimed earlier was running under this
/// worker then, and was found. So the lookup reads a bounded range of the index however many
/// jobs the worker ran, also while a transaction held open elsewhere keeps their entries in
/// it (Postgres): walking them all made each heartbeat late and the worker stop claiming. An
/// outcome given up on makes a stray only when the job ends, however long ago it was claimed:
/// then reconciles look at all until one has put it back or found it no longer running here.
async fn reconcile(ctx: &Ctx, all: bool) -> Result<usize> {
    let (again, given_up) = ctx.owned.take_look_again();
    // Only a lookup of all tells which of the jobs given up on are no longer running here.
    let all = again || all || !given_up.is_empty();
    let looked = reconcile_since(ctx, all, given_up).await;
    if looked.is_err() && all {
        ctx.owned.look_again();
    }
    looked
}

/// [`reconcile`]; `given_up` are the jobs given up on before it began, settled only by a
/// lookup of all (`all`, which [`reconcile`] sets when there are any).
async fn reconcile_since(ctx: &Ctx, all: bool, given_up: Vec<(i64, i32)>) -> Result<usize> {
    let margin =
        chrono::Duration::from_std(ctx.config.lease * 2).unwrap_or(chrono::Duration::days(1));
    let last = *ctx.reconciled.lock().unwrap_or_else(|p| p.into_inner());
    let since = match last {
        Some(at) if !all => at - margin,
        _ => DateTime::<Utc>::UNIX_EPOCH,
    };
    let now = ctx.store.now().await?;
    let strays: Vec<_> = {
        let _no_claims = ctx.claiming.write().await;
        let listed = ctx.store.job_list_running(&ctx.identity.id, since).await?;
        // Given up on before the lookup began and not in it (a lookup of all): ended or
        // rescued meanwhile, and never `running` here at that attempt again.
        if all {
            let running: std::collections::HashSet<(i64, i32)> =
                listed.iter().map(|f| (f.id, f.attempt)).collect();
            ctx.owned
                .settled(given_up.into_iter().filter(|job| !running.contains(job)));
        }
        let strays: Vec<_> = listed
            .into_iter()
            .filter_map(|f| match ctx.owned.holding(f.id, f.attempt) {
                Holding::Held => None,
                Holding::Stray { started } => Some((f, started)),
            })
            .collect();
        // (A lookup that failed puts nothing back, so it has nothing to record.)
        ctx.strays
            .record(strays.iter().map(|(f, _)| (f.id, f.attempt)));
        strays
    };
    // A stray's attempt can never become one this worker holds (a new claim counts a new
    // attempt), so putting it back needs no lock.
    let mut put_back = 0;
    for (fence, started) in strays {
        let job = (fence.id, fence.attempt);
        match ctx
            .store
            .job_release(JobReleaseParams {
                fence: fence.clone(),
                reason: RECONCILED.to_string(),
                started,
            })
            .await
        {
            Ok(row) => {
                put_back += 1;
                warn!(job_id = fence.id, attempt = fence.attempt, "a job running under this worker was not running here; put it back to run again");
                // Put back ended cancelled: a user had asked.
                executor::tell_given_back(ctx, &row, std::time::Instant::now());
            }
            Err(Error::Fenced { .. }) => {} // it finished or was rescued meanwhile
            Err(e) => return Err(e),
        }
        ctx.owned.settled([job]);
    }
    *ctx.reconciled.lock().unwrap_or_else(|p| p.into_inner()) = Some(now);
    Ok(put_back)
}

impl Ctx {
    /// Whether this worker's last recorded heartbeat is recent enough to claim jobs: within
    /// half its lease, so that others cannot declare it lost while it takes on new work.
    fn heartbeat_fresh(&self) -> bool {
        self.last_heartbeat.borrow().elapsed() <= self.config.lease / 2
    }

    /// Waits until claiming is allowed (see [`Ctx::heartbeat_fresh`]); false if claiming
    /// stopped meanwhile.
    pub(crate) async fn may_claim(&self) -> bool {
        if self.heartbeat_fresh() {
            return true;
        }
        warn!(lease = ?self.config.lease, "the worker heartbeat is overdue; not claiming until it is recorded again");
        let mut recorded = self.last_heartbeat.subscribe();
        while !self.heartbeat_fresh() {
            tokio::select! {
                changed = recorded.changed() => if changed.is_err() { return false },
                _ = self.stop_claiming.cancelled() => return false,
            }
        }
        true
    }
}

/// A worker: runs the jobs of its registry from the configured queues until shut down.
pub struct Runtime {
    store: Arc<Store>,
    workers: Workers,
    config: RuntimeConfig,
    identity: WorkerIdentity,
    errors: Arc<dyn ErrorHandler>,
    events: Arc<dyn JobEvents>,
}

/// What a runtime did before it stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Jobs still running at the shutdown timeout, cancelled and made retryable.
    pub cancelled_at_shutdown: u64,
}

impl Runtime {
    /// A runtime for these workers; nothing runs until [`Runtime::run`].
    pub fn new(store: Arc<Store>, workers: Workers, config: RuntimeConfig) -> Self {
        Runtime {
            store,
            workers,
            config,
            identity: WorkerIdentity::current(),
            errors: Arc::new(LogErrors),
            events: Arc::new(NoEvents),
        }
    }

    /// Tells `events` how each attempt ended and what the rescuer moved (metrics).
    pub fn with_events(mut self, events: Arc<dyn JobEvents>) -> Self {
        self.events = events;
        self
    }

    /// Replaces the error handler (the default logs through tracing).
    pub fn with_error_handler(mut self, handler: Arc<dyn ErrorHandler>) -> Self {
        self.errors = handler;
        self
    }

    /// This runtime's worker identity.
    pub fn identity(&self) -> &WorkerIdentity {
        &self.identity
    }

    /// Runs until `shutdown.soft` (or `shutdown.hard`) is cancelled, then stops as described on
    /// [`Shutdown`]: no job is left `running` by this worker when this returns.
    pub async fn run(self, shutdown: Shutdown) -> Result<RunReport> {
        let Runtime {
            store,
            workers,
            config,
            identity,
            errors,
            events,
        } = self;
        config.check()?;
        // Registered with its own lease and stuck limits: every rescuer judges this worker and
        // its jobs by these, whatever its own settings (issue 11.2).
        let registration = WorkerRegisterParams {
            id: identity.id.clone(),
            host: identity.host.clone(),
            pid: identity.pid,
            lease: config.lease,
            stuck_after: maintenance::RescuerConfig::for_workers(config.lease, &workers)
                .stuck_after,
            // What it serves, so that jobs nobody serves can be found (issue 17.7).
            queues: config.queues.iter().map(|(q, _)| q.clone()).collect(),
            kinds: workers.kinds(),
            unsteady: false,
            since_last: None,
        };
        // The registration may wait for the database (SQLite's write lock held elsewhere,
        // by a stopped process even): a signal meanwhile stops the runtime before it starts
        // anything (review of 6 Dec: every signal, a second included, went unheard until the
        // lock was free). A registration the write completes after all leaves a row whose
        // heartbeat goes stale, with no job: a rescuer judges it lost and removes it.
        // On PostgreSQL a connection lost meanwhile (a restart, a failover) is retried, as
        // every later write is, until the server answers (review of 6 Dec: the runtime
        // returned the error, and `porter worker` exited 1 where it reconnects by itself
        // later on). A SQLite file has no server to wait for: its errors (a read-only file, a
        // full disk) are returned, as `store::open_retrying` returns them (own review).
        let server = store.backend() == crate::store::Backend::Postgres;
        let registered = crate::store::retry_while_unavailable(
            server,
            (REGISTER_RETRY_FIRST, REGISTER_RETRY_LONGEST),
            "registering the worker",
            || store.worker_register(registration.clone()),
            async {
                tokio::select! {
                    _ = shutdown.soft.cancelled() => {}
                    _ = shutdown.hard.cancelled() => {}
                }
            },
        )
        .await?;
        if registered.is_none() {
            info!("shutting down before the worker was registered (its write waited for the database)");
            return Ok(RunReport::default());
        }
        if config.maintenance {
            warn_of_periodic_jobs_not_served(&config, &workers);
        }
        let queues: Vec<String> = config.queues.iter().map(|(q, _)| q.clone()).collect();
        crate::events::guarded(
            "JobEvents::started",
            |_| (),
            || events.started(&queues, &workers.kinds()),
        );
        let stop_claiming = CancellationToken::new();
        let stop_jobs = CancellationToken::new();
        let stop_services = CancellationToken::new();
        // Dropped before it returns (its future aborted, or lost in a select!), the runtime
        // stops as a hard shutdown does: its tasks would otherwise claim, run and heartbeat
        // on with nothing left to stop them. (On return every one of these has been cancelled,
        // or has nothing left to stop.)
        let _stop_when_dropped = [
            stop_claiming.clone().drop_guard(),
            stop_jobs.clone().drop_guard(),
            stop_services.clone().drop_guard(),
        ];
        let owned = Arc::new(Owned::default());
        // Failing writes are given up on instead of retried from a hard shutdown on, or once a
        // soft one has taken twice its timeout (see below).
        let give_up = shutdown.hard.child_token();
        let completer = completer::Completer::spawn(
            store.clone(),
            owned.clone(),
            give_up.clone(),
            events.clone(),
        );
        let ctx = Arc::new(Ctx {
            store: store.clone(),
            registration,
            workers,
            identity: identity.clone(),
            config: config.clone(),
            stop_claiming: stop_claiming.clone(),
            stop_jobs: stop_jobs.clone(),
            hard: give_up.clone(),
            jobs: TaskTracker::new(),
            completer,
            errors,
            events: events.clone(),
            running: canceller::RunningJobs::default(),
            last_heartbeat: tokio::sync::watch::Sender::new(tokio::time::Instant::now()),
            owned,
            claiming: tokio::sync::RwLock::new(()),
            strays: Strays::default(),
            still_running: Default::default(),
            reconciled: std::sync::Mutex::new(None),
            feeds: Default::default(),
        });
        ctx.completer.attach(&ctx);

        let failed = Failed::default();
        let services = TaskTracker::new();
        // Before any producer runs: cancel news is counted only for subscribed workers.
        let cancel_news = store.wakeup().subscribe_cancel(&identity.id);
        let reconcile_due = Arc::new(tokio::sync::Notify::new());
        services.spawn(supervised(
            "heartbeat".into(),
            failed.clone(),
            heartbeat_loop(ctx.clone(), reconcile_due.clone(), stop_services.clone()),
        ));
        services.spawn(supervised(
            "reconcile".into(),
            failed.clone(),
            reconcile_loop(ctx.clone(), reconcile_due, stop_services.clone()),
        ));
        services.spawn(supervised(
            "cancel watcher".into(),
            failed.clone(),
            canceller::watch(ctx.clone(), cancel_news, stop_services.clone()),
        ));
        if config.maintenance {
            spawn_maintenance(&services, &ctx, &events, stop_services.clone(), &failed);
        }
        let producers = TaskTracker::new();
        for (queue, limit) in &config.queues {
            producers.spawn(supervised(
                format!("queue {queue}"),
                failed.clone(),
                producer::run(ctx.clone(), queue.clone(), *limit),
            ));
        }
        producers.close();
        info!(worker_id = %identity.id, queues = ?config.queues, backend = %store.backend(), "worker ready");

        tokio::select! {
            _ = shutdown.soft.cancelled() => {}
            _ = shutdown.hard.cancelled() => {}
            // One of its own tasks panicked: shut down as for a signal (its running jobs
            // finish), and say so.
            _ = failed.token.cancelled() => {}
        }
        info!("shutting down");
        stop_claiming.cancel();
        // With the database refusing writes, each one is retried for about 70 s: the
        // give-backs, the releases of jobs stopped by the timeout and the final put-back would
        // take minutes, well past any supervisor's patience. Twice the timeout after the
        // signal (at least GIVE_UP_FLOOR, so that a short timeout still rides out a blip),
        // writes that fail are given up on as after a second signal; the jobs they were for
        // stay `running` under a worker that deregisters, for a rescuer.
        let give_up_after = config.shutdown_timeout.saturating_mul(2).max(GIVE_UP_FLOOR);
        let deadline = tokio_util::task::AbortOnDropHandle::new(tokio::spawn({
            let give_up = give_up.clone();
            async move {
                tokio::time::sleep(give_up_after).await;
                if !give_up.is_cancelled() {
                    warn!(after = ?give_up_after, "the shutdown is taking long: writes that fail from now on are given up on, not retried");
                    give_up.cancel();
                }
            }
        }));
        // The running jobs' time counts from the signal. A producer's claim may be waiting for
        // a lock another connection holds (and returns only with it): the jobs are not kept
        // running for that, only as long as the timeout allows.
        let jobs_until = tokio::time::Instant::now() + config.shutdown_timeout;
        let finish = async {
            tokio::select! {
                _ = producers.wait() => {}
                _ = tokio::time::sleep_until(jobs_until) => {}
                _ = shutdown.hard.cancelled() => {}
            }
            ctx.jobs.close();
            let running = ctx.jobs.len();
            let mut report = RunReport::default();
            if running > 0 {
                info!(running, timeout = ?config.shutdown_timeout, "waiting for running jobs");
                let finished = tokio::select! {
                    _ = ctx.jobs.wait() => true,
                    _ = tokio::time::sleep_until(jobs_until) => false,
                    _ = shutdown.hard.cancelled() => false,
                };
                if !finished {
                    report.cancelled_at_shutdown = ctx.jobs.len() as u64;
                    warn!(
                        cancelled = report.cancelled_at_shutdown,
                        "cancelling jobs still running; they will be retried"
                    );
                    stop_jobs.cancel();
                    ctx.jobs.wait().await;
                }
            }
            // The producers give back the jobs they claimed ahead as they stop. Those writes
            // are waited for, not cut off with the jobs' time, nor by a second signal (which
            // gives up on writes that fail, and these have not): the reconcile below leaves a
            // job being given back to its give-back, and a worker that went on would
            // deregister with those jobs still `running`, for a rescuer, once the process
            // exits (until 6 Dec a second signal did so, and the worker exited 0). A give-back
            // that fails under a second signal is given up on at once (the reconcile puts its
            // job back); one that waits for a lock held elsewhere ends the shutdown with an
            // error once writes are given up on and ABANDON_GRACE has passed (below).
            producers.wait().await;
            ctx.completer.flush().await;
            stop_services.cancel();
            services.close();
            services.wait().await;
            // Never leave this worker's jobs `running`: after the completer flushed, put back any
            // the database still says it runs (outcomes given up on, a lost claim reply).
            let mut delay = Duration::from_millis(100);
            let mut tries = 0;
            let mut left_running = None;
            loop {
                tries += 1;
                match reconcile(&ctx, true).await {
                    Ok(_) => break,
                    // A hard shutdown, or one past its time, does not wait out an outage:
                    // rescuers put the jobs back.
                    Err(e) if tries < 10 && !give_up.is_cancelled() => {
                        warn!(error = %e, "could not reconcile this worker's jobs at shutdown; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = give_up.cancelled() => {}
                        }
                        delay = (delay * 2).min(Duration::from_secs(2));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "COULD NOT PUT BACK jobs still running under this worker; \
                        they stay running until another worker's rescuer finds this worker gone");
                        left_running = Some(e);
                        break;
                    }
                }
            }
            // Jobs that block their threads still run here: the registration stays, and
            // expires with the lease, by when the process has exited (the `porter` binary gives
            // its threads 1 s), so that no rescuer puts them back beside their own run before.
            let still_running = ctx.still_running.load(std::sync::atomic::Ordering::Acquire);
            if still_running > 0 {
                tracing::error!(still_running, "jobs that block their threads still run: this worker stays registered until its lease passes, and other workers' rescuers put them back then");
            } else if let Err(e) = store.worker_delete(&identity.id).await {
                warn!(error = %e, "could not deregister the worker; its registration expires with the lease");
            }
            (report, left_running)
        };
        // A write that waits (for a lock held elsewhere) is not a failed one: given up on,
        // the shutdown still waited for it. ABANDON_GRACE after writes are given up on (a
        // second signal, or twice the timeout), whatever is still waiting is left: the worker
        // exits with an error, its jobs `running` for another worker's rescuer.
        let (report, left_running) = tokio::select! {
            done = finish => done,
            _ = async {
                give_up.cancelled().await;
                tokio::time::sleep(ABANDON_GRACE).await;
            } => {
                let running = ctx.owned.len();
                tracing::error!(running, "the database took no write in time: exiting with jobs left running under this worker, which other workers' rescuers put back once its lease has passed");
                return Err(Error::Unavailable(format!(
                    "the shutdown could not write to the database for {:?} after writes were given up on; {running} jobs left running under this worker for a rescuer",
                    ABANDON_GRACE
                )));
            }
        };
        drop(deadline);
        let still_running = ctx.still_running.load(std::sync::atomic::Ordering::Acquire);
        if still_running > 0 {
            return Err(Error::StillRunning(still_running));
        }
        // The jobs it could not put back are `running` under a worker gone: an error, so that
        // its supervisor knows (until 6 Dec it exited 0).
        if let Some(e) = left_running {
            return Err(Error::Unavailable(format!(
                "the shutdown could not put back (nor find) the jobs still running under this worker ({e}); other workers' rescuers put any back once its lease has passed"
            )));
        }
        info!("shutdown complete");
        match failed.error() {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }
}

/// Says once, at start, which periodic jobs this process schedules into a queue or of a kind
/// it does not serve itself (`porter worker --queues mail` schedules the built-in ones into
/// `default`): they wait unless another worker serves them, and show as unserved until one
/// does (issue 17.7).
fn warn_of_periodic_jobs_not_served(config: &RuntimeConfig, workers: &Workers) {
    for job in &config.periodic {
        let queue = job
            .opts
            .queue
            .as_deref()
            .unwrap_or(crate::job::DEFAULT_QUEUE);
        if !config.queues.iter().any(|(q, _)| q == queue) || !workers.contains(&job.kind) {
            warn!(
                "periodic job '{}' goes to queue '{queue}' kind '{}', which this worker does not serve; its jobs wait unless another worker serves them",
                job.name, job.kind
            );
        }
    }
}

/// The least time into a soft shutdown before failing writes are given up on (twice the
/// shutdown timeout when longer).
pub const GIVE_UP_FLOOR: Duration = Duration::from_secs(10);

/// How long a shutdown still waits for writes that wait (a lock held elsewhere) once writes
/// are given up on; then the worker exits, its jobs left for a rescuer.
pub const ABANDON_GRACE: Duration = Duration::from_secs(5);

/// How soon a failed heartbeat is tried again (at most; a third of the lease when shorter).
pub const HEARTBEAT_RETRY: Duration = Duration::from_secs(1);

/// Keeps this worker's lease alive: a heartbeat every third of the lease, and a failed one
/// tried again after [`HEARTBEAT_RETRY`], not a third of the lease later. While the last
/// recorded heartbeat is older than half the lease, the producers do not claim
/// ([`Ctx::may_claim`]). The stores give heartbeats a lane of their own (a separate
/// connection on PostgreSQL, the front of the writer's queue on SQLite), so they never wait
/// behind job work.
async fn heartbeat_loop(
    ctx: Arc<Ctx>,
    reconcile_due: Arc<tokio::sync::Notify>,
    stop: CancellationToken,
) {
    let every = ctx.config.lease / 3;
    let retry = HEARTBEAT_RETRY.min(every);
    let flush = HEARTBEAT_FLUSH.min(ctx.config.lease / 6);
    let mut failing = false;
    loop {
        let beat_at = tokio::time::Instant::now() + if failing { retry } else { every };
        // Outcomes still being retried go first: the end of the wait is spent asking them to
        // try again, and the heartbeat follows as soon as they land (see `Retrying`). Not
        // while heartbeats fail (an outage): asked every 100 ms for as long as it lasts, each
        // failing write tried ten times a second against a database coming back (review of
        // 7 Dec); the first heartbeat through says they still fail, and asks them then.
        let asking = if failing { beat_at } else { beat_at - flush };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ctx.owned.retrying.flush_until(asking, beat_at) => {}
        }
        // Some still failing: the heartbeat says so, and stuck passes wait a moment for them
        // as after a late heartbeat. After an outage it may be the first write to get
        // through, however soon they are asked again.
        let mut registration = ctx.registration.clone();
        registration.unsteady = ctx.owned.retrying.failing();
        let started = tokio::time::Instant::now();
        // By this process's monotonic clock: a database clock that moved on much further
        // meanwhile jumped (a laptop's sleep), and the stuck rescue does not count the jump
        // as time this worker's jobs ran (review of 7 Dec).
        registration.since_last = Some(started - *ctx.last_heartbeat.borrow());
        match ctx.store.worker_register(registration).await {
            Ok(()) => {
                ctx.last_heartbeat.send_replace(started);
                if ctx.owned.retrying.failing() {
                    // The database is back: no need to wait for their next try.
                    ctx.owned.retrying.ask();
                }
                if failing {
                    failing = false;
                    info!("worker heartbeat recorded again");
                }
            }
            Err(e) => {
                if !failing {
                    failing = true;
                    warn!(error = %e, "worker heartbeat failed; jobs may be rescued by others if this lasts past the lease");
                }
                continue;
            }
        }
        // With each heartbeat: put back what the database says this worker runs but it does
        // not (issue 11.9, 11.10), in a task of its own.
        reconcile_due.notify_one();
    }
}

/// Reconciles after each recorded heartbeat, one at a time (a heartbeat during a reconcile
/// asks for one more after it). Apart from the heartbeats: a reconcile that takes long (a
/// slow database; before its lookup was bounded, a transaction held open elsewhere) used to
/// push the next heartbeat back by as long, until the worker's own heartbeat was overdue, it
/// stopped claiming, and other workers' rescuers took its jobs as lost.
async fn reconcile_loop(ctx: Arc<Ctx>, due: Arc<tokio::sync::Notify>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = due.notified() => {}
        }
        if let Err(e) = reconcile(&ctx, false).await {
            warn!(error = %e, "could not reconcile the jobs running under this worker; trying again with the next heartbeat");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    /// An outcome write's tries keep their own clock: with a heartbeat asking it to try again
    /// every 100 ms, it still makes its 40 counted tries over about 70 s, as without asks
    /// (7976741 counted every try, and asks used the 40 up in seconds).
    #[tokio::test(start_paused = true)]
    async fn tries_asked_for_do_not_count_against_an_outcome_write() {
        let start = Instant::now();
        let mut tries = OutcomeTries::new(&Arc::new(Retrying::default()));
        let mut made = 0;
        loop {
            tries.start();
            made += 1;
            if !tries.left() {
                break;
            }
            let asked = Instant::now() + FLUSH_ASK;
            tokio::time::sleep_until(tries.due.min(asked)).await;
        }
        // Due 50 ms, 100 ms, ... 1.6 s, then 2 s apart: the 40th at 69.15 s.
        assert_eq!(start.elapsed(), Duration::from_millis(69_150));
        assert_eq!(tries.counted, OUTCOME_TRIES);
        assert!(made > 600, "{made} tries in all");
    }
}
