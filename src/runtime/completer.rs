//! Records completions in batches: one statement (or one grouped transaction) per batch.
//! Other outcomes are written at once by the executor. A batch also claims for the producers
//! of its queues that wait for jobs (their standing orders, see `producer::Feed`), right after
//! the completions (in their transaction on SQLite): a workflow's next steps are claimed by the
//! write that made them available, not after a wake-up.
//!
//! A completion frees its job's slot when the job returns, but keeps its held permit (see
//! `producer`) until it is written, as the executor does for every other outcome: so a queue
//! never holds more claimed but unrecorded jobs than [`super::producer::HOLD_FACTOR`] times its
//! concurrency, and a crash costs at most that many runs again.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use super::producer;
use super::slot::Slot;
use super::Ctx;
use crate::error::Error;
use crate::events::{AttemptEnd, AttemptEnded, JobEvents};
use crate::store::{JobFence, Store};

/// Most completions written in one batch.
const MAX_BATCH: usize = 1000;
/// Longest a completion waits for the completions of other running jobs to join its batch.
const COALESCE: Duration = Duration::from_millis(1);

enum Msg {
    Complete(JobFence, Slot, AttemptEnded),
    Flush(oneshot::Sender<()>),
}

/// Handle to the completer task.
pub(crate) struct Completer {
    tx: mpsc::UnboundedSender<Msg>,
    /// Jobs claimed whose outcome is not known yet.
    running: Arc<AtomicUsize>,
    /// The runtime, for the producers' standing orders (set once it exists).
    ctx: Arc<OnceLock<Weak<Ctx>>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Completer {
    /// Once `hard` is cancelled (a hard shutdown), a batch that fails is given up on at
    /// once instead of retried: its jobs stay `running` for a rescuer to put back.
    pub(crate) fn spawn(
        store: Arc<Store>,
        owned: Arc<super::Owned>,
        hard: CancellationToken,
        events: Arc<dyn JobEvents>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let running = Arc::new(AtomicUsize::new(0));
        let ctx = Arc::new(OnceLock::new());
        let task = tokio::spawn(run(
            Shared {
                store,
                running: running.clone(),
                owned,
                hard,
                events,
                ctx: ctx.clone(),
                behind: Default::default(),
            },
            rx,
        ));
        Completer {
            tx,
            running,
            ctx,
            task: Mutex::new(Some(task)),
        }
    }

    /// Lets batches claim for the runtime's producers (held weakly: the runtime owns this).
    pub(crate) fn attach(&self, ctx: &Arc<Ctx>) {
        let _ = self.ctx.set(Arc::downgrade(ctx));
    }

    /// `n` claimed jobs start: their completions are worth waiting a moment for.
    pub(crate) fn started(&self, n: usize) {
        self.running.fetch_add(n, Ordering::AcqRel);
    }

    /// A job's outcome is known (whatever it is; a completion follows with [`Self::complete`]).
    pub(crate) fn finished(&self) {
        self.running.fetch_sub(1, Ordering::AcqRel);
    }

    /// Queues a completion; it is written with the next batch, and then the job's held permit
    /// is released and `ended` told to the runtime's events (unless the write was fenced off).
    pub(crate) fn complete(&self, fence: JobFence, held: Slot, ended: AttemptEnded) {
        let _ = self.tx.send(Msg::Complete(fence, held, ended));
    }

    /// Waits until every completion queued so far is written.
    pub(crate) async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
        let _ = self.task.lock().await;
    }
}

/// What the completer task works with.
struct Shared {
    store: Arc<Store>,
    running: Arc<AtomicUsize>,
    owned: Arc<super::Owned>,
    hard: CancellationToken,
    events: Arc<dyn JobEvents>,
    ctx: Arc<OnceLock<Weak<Ctx>>>,
    /// Set from a write's first failure until the completions queued behind it are written.
    behind: std::sync::Mutex<Option<Behind>>,
}

/// A write that failed, and the completions queued behind it: never tried, but as unwritten as
/// its own. They count as one failing write ([`super::Retrying`]) until written, for the
/// heartbeat to wait for them too.
struct Behind {
    _failing: super::RetryingWrite,
    /// Completions queued when the write landed (or was given up on) that are still to be
    /// written; `None` while it is failing.
    left: Option<usize>,
}

impl Shared {
    /// A write failed (it will be retried).
    fn failed(&self) {
        let mut behind = self.behind.lock().unwrap_or_else(|e| e.into_inner());
        match behind.as_mut() {
            Some(b) => b.left = None,
            None => {
                *behind = Some(Behind {
                    _failing: self.owned.retrying.enter(),
                    left: None,
                })
            }
        }
    }

    /// A batch was written or given up on, `n` messages read for it and `queued` still
    /// waiting.
    fn written(&self, n: usize, queued: usize) {
        let mut behind = self.behind.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = behind.as_mut() {
            let left = match b.left {
                None => queued,
                Some(left) => left.saturating_sub(n),
            };
            b.left = Some(left);
            if left == 0 || queued == 0 {
                *behind = None;
            }
        }
    }
}

async fn run(sh: Shared, mut rx: mpsc::UnboundedReceiver<Msg>) {
    let mut batch: Vec<JobFence> = Vec::new();
    let mut ended: Vec<AttemptEnded> = Vec::new();
    let mut slots: Vec<Slot> = Vec::new();
    let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        // Messages read for this batch.
        let mut n = 0;
        let deadline = tokio::time::Instant::now() + COALESCE;
        loop {
            let mut flush = false;
            while let Some(msg) = next.take() {
                n += 1;
                match msg {
                    Msg::Complete(f, slot, e) => {
                        batch.push(f);
                        slots.push(slot);
                        ended.push(e);
                    }
                    Msg::Flush(tx) => {
                        flushes.push(tx);
                        flush = true;
                    }
                }
                if batch.len() >= MAX_BATCH {
                    break;
                }
                next = rx.try_recv().ok();
            }
            // Jobs claimed together tend to finish together: while some are still running,
            // wait a moment for their completions to join this batch, rather than writing one
            // now and the rest a whole write later.
            if flush || batch.len() >= MAX_BATCH || sh.running.load(Ordering::Acquire) == 0 {
                break;
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(msg)) => next = Some(msg),
                Ok(None) | Err(_) => break,
            }
        }
        if !batch.is_empty() {
            let written: Vec<(i64, i32)> = batch.iter().map(|f| (f.id, f.attempt)).collect();
            let write = write_batch(&sh, &mut batch, &mut ended, &mut slots);
            if let Err(payload) = AssertUnwindSafe(write).catch_unwind().await {
                // A bug (in a driver, say): this task must outlive it, or no completion of
                // this worker is written again. The batch is given up on as a failed write
                // is (its jobs stay `running`, and the reconcile puts them back); orders it
                // took were given up on as it unwound (see `producer::TakenOrder`).
                let message = crate::events::panic_message(&*payload);
                error!(panic = %message, jobs = written.len(), "writing a batch of completions panicked; the reconcile puts its jobs back");
                batch.clear();
                ended.clear();
                sh.owned.give_up(&written, true);
            }
        }
        // Written (or given up on): the held permits are free for new claims.
        Slot::release_all(std::mem::take(&mut slots));
        sh.written(n, rx.len());
        for f in flushes.drain(..) {
            let _ = f.send(());
        }
    }
}

/// Writes a batch of completions, claiming along for the standing orders of its queues, and
/// hands the claimed jobs on with the completed jobs' held permits (the rest stay in `slots`).
async fn write_batch(
    sh: &Shared,
    batch: &mut Vec<JobFence>,
    ended: &mut Vec<AttemptEnded>,
    slots: &mut Vec<Slot>,
) {
    let ctx = sh.ctx.get().and_then(Weak::upgrade);
    // The completions of each queue, in the order first seen.
    let mut by_queue: Vec<(String, usize)> = Vec::new();
    for e in ended.iter() {
        match by_queue.iter_mut().find(|(q, _)| *q == e.queue) {
            Some((_, n)) => *n += 1,
            None => by_queue.push((e.queue.clone(), 1)),
        }
    }
    let orders = match &ctx {
        Some(ctx) => producer::take_orders(ctx, &by_queue),
        None => Vec::new(),
    };
    let claimed_at = tokio::time::Instant::now();
    let cancels_heard = ctx
        .as_ref()
        .map_or(0, |ctx| ctx.store.wakeup().cancel_wakeups(&ctx.identity.id));
    let fences = std::mem::take(batch);
    let written: Vec<(i64, i32)> = fences.iter().map(|f| (f.id, f.attempt)).collect();
    let (outcomes, claims) = match &ctx {
        Some(ctx) if !orders.is_empty() => claim_along(sh, ctx, fences, &orders).await,
        _ => (write(sh, fences, false).await, Vec::new()),
    };
    // The held permits of each queue's completions, to hand on to the jobs claimed for it.
    let mut permits: Vec<(String, Vec<Slot>)> = Vec::new();
    if !orders.is_empty() {
        let mut rest = Vec::new();
        for (slot, e) in std::mem::take(slots).into_iter().zip(ended.iter()) {
            if orders.iter().any(|o| o.params.queue == e.queue) {
                match permits.iter_mut().find(|(q, _)| *q == e.queue) {
                    Some((_, p)) => p.push(slot),
                    None => permits.push((e.queue.clone(), vec![slot])),
                }
            } else {
                rest.push(slot);
            }
        }
        *slots = rest;
    }
    // Fenced off (rescued, cancelled or put back meanwhile), a completion leaves no stray;
    // given up on, its jobs are still `running` here, for the reconcile to find.
    for (mut e, outcome) in ended.drain(..).zip(&outcomes) {
        match outcome {
            Written::Completed => super::executor::tell(sh.events.as_ref(), &e),
            // Recorded as failed: told as the failure it became.
            Written::Refused(end) => {
                e.end = *end;
                super::executor::tell(sh.events.as_ref(), &e);
            }
            Written::FencedOff | Written::GivenUp => {}
        }
    }
    // Written, fenced off, refused or given up on: no longer this worker's to hold. A job
    // whose completion was given up on is still `running` here, and the reconcile puts it
    // back (at-least-once: it runs again).
    let (given_up, done): (Vec<_>, Vec<_>) = written
        .iter()
        .zip(&outcomes)
        .partition(|(_, outcome)| **outcome == Written::GivenUp);
    let given_up: Vec<(i64, i32)> = given_up.into_iter().map(|(job, _)| *job).collect();
    let done: Vec<(i64, i32)> = done.into_iter().map(|(job, _)| *job).collect();
    sh.owned.give_up(&given_up, true);
    sh.owned.remove_all(&done);
    if let Some(ctx) = &ctx {
        for (order, claim) in orders.into_iter().zip(claims) {
            let mut handed = permits
                .iter()
                .position(|(q, _)| *q == order.params.queue)
                .map(|i| permits.swap_remove(i).1)
                .unwrap_or_default();
            producer::fill_order(ctx, order, claim, &mut handed, (claimed_at, cancels_heard)).await;
            slots.extend(handed);
        }
    }
    for (_, p) in permits {
        slots.extend(p);
    }
}

/// A batch's write that also claims for `orders`: one try, holding the reconcile off
/// (`claiming`) until the claimed jobs are in `owned`, but for at most an eighth of the lease.
/// A write that takes longer (a stalled database, an exhausted pool) must not keep the
/// heartbeat loop's reconcile waiting, and behind it (the lock favours a waiting writer) every
/// producer: past that, the lock is let go until the write returns, and of the jobs it
/// claimed, those a reconcile took for strays meanwhile are given back unstarted (that
/// reconcile puts them back too: the later release is fenced off), as a producer's own late
/// claim does. A failed try leaves the retries ([`write`]) to complete only. Returns what
/// [`write`] returns and, per order, what became of its claim.
async fn claim_along(
    sh: &Shared,
    ctx: &Ctx,
    fences: Vec<JobFence>,
    orders: &[producer::TakenOrder],
) -> (Vec<Written>, Vec<producer::Claim>) {
    let claims = orders.iter().map(|o| o.params.clone()).collect();
    let claiming = ctx.claiming.read().await;
    let since = ctx.strays.mark();
    let first = sh.store.job_complete_and_claim(fences.clone(), claims);
    tokio::pin!(first);
    let (result, claiming, late) =
        match tokio::time::timeout(ctx.config.lease / 8, &mut first).await {
            Ok(result) => (result, claiming, false),
            Err(_) => {
                drop(claiming);
                let result = first.await;
                (result, ctx.claiming.read().await, true)
            }
        };
    let (changed, claimed) = match result {
        Ok((changed, claimed)) => (Written::from_changed(changed), claimed),
        Err(e) => {
            drop(claiming);
            debug!(error = %e, "a completion write that claimed along failed; completing only");
            // Part of it may have committed (PostgreSQL writes a large batch in two halves).
            let changed = write(sh, fences, true).await;
            return (
                changed,
                orders.iter().map(|_| producer::Claim::NotMade).collect(),
            );
        }
    };
    // Known from here on as this worker's, whether they start or go back. What reconciles
    // took for strays is asked under the lock, so that none takes more meanwhile.
    let taken = if late {
        ctx.strays.taken_since(since)
    } else {
        None
    };
    let jobs = claimed.iter().flatten();
    let n = jobs.clone().count();
    sh.owned.insert_all(jobs.map(|j| (j.id, j.attempt)));
    sh.running.fetch_add(n, Ordering::AcqRel);
    drop(claiming);
    let claims: Vec<producer::Claim> = claimed
        .into_iter()
        .map(|jobs| match &taken {
            None => producer::Claim::Jobs(jobs),
            Some(taken) => {
                let (back, start) = jobs
                    .into_iter()
                    .partition(|j| taken.contains(j.id, j.attempt));
                producer::Claim::Late { start, back }
            }
        })
        .collect();
    let back: usize = claims.iter().map(producer::Claim::given_back).sum();
    if back > 0 {
        warn!(
            jobs = back,
            "a completion write that claimed along took too long to keep the reconcile waiting, which took jobs it claimed for strays; giving them back"
        );
    }
    (changed, claims)
}

/// What became of one completion of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    /// Written: the job is `completed`.
    Completed,
    /// Changed nothing: the job was rescued, cancelled or put back meanwhile.
    FencedOff,
    /// The database refused this job's completion alone (a trigger of its own, a constraint),
    /// and its attempt was recorded as failed instead: the job is retried as its attempts
    /// allow.
    Refused(AttemptEnd),
    /// Not written: the job is still `running` here, for the reconcile to put back.
    GivenUp,
}

impl Written {
    fn from_changed(changed: Vec<bool>) -> Vec<Written> {
        changed
            .into_iter()
            .map(|c| {
                if c {
                    Written::Completed
                } else {
                    Written::FencedOff
                }
            })
            .collect()
    }
}

/// Writes one batch, retrying while the database is unreachable: a completion that is never
/// written leaves its job to be rescued and run again, which at-least-once allows but which
/// costs a second run. A hard shutdown stops the retries: it must not wait out an outage.
///
/// A batch is one statement, so one completion the database refuses (a trigger or constraint
/// of the application's on one row: [`crate::store::refusal`]) failed the whole batch. Until 7
/// Dec the batch was then retried for about 70 s, with no other completion of the worker
/// written meanwhile, and given up: every job of it ran again, and the refused one came back
/// in the next batch, for good (review of 7 Dec). A refused batch is now split in halves, each
/// written as a batch is, down to the completions refused alone, whose attempts are recorded
/// as failed instead ([`refuse`]). Any other error (an outage, a deadlock, a timeout) is the
/// batch's as a whole: retried, never split.
///
/// `unsure`: an earlier write of these completions failed, and may have committed some of
/// them (a commit whose answer was lost; on PostgreSQL, a claim-along batch written in two
/// halves, one of which committed). Those read as fenced off on the next write, and their ends
/// went untold to the runtime's events (review of 7 Dec); so after such a failure, the
/// completions read as fenced off are looked up ([`confirm`]).
async fn write(sh: &Shared, fences: Vec<JobFence>, mut unsure: bool) -> Vec<Written> {
    let (store, hard, retrying) = (&sh.store, &sh.hard, &sh.owned.retrying);
    let mut warned = false;
    let mut tries = super::OutcomeTries::new(retrying);
    loop {
        tries.start();
        match store.job_complete_many(fences.clone()).await {
            Ok(changed) => {
                let mut written = Written::from_changed(changed);
                if unsure {
                    confirm(sh, &fences, &mut written).await;
                }
                let stale = written.iter().filter(|w| **w == Written::FencedOff).count();
                if stale > 0 {
                    debug!(
                        stale,
                        "completions fenced off: those jobs were rescued or cancelled meanwhile"
                    );
                }
                return written;
            }
            Err(e) if crate::store::refusal(&e) && !hard.is_cancelled() => {
                if let [fence] = fences.as_slice() {
                    return vec![refuse(sh, fence, &e).await];
                }
                debug!(error = %e, jobs = fences.len(), "the database refused a batch of completions; writing it in halves");
                let (a, b) = fences.split_at(fences.len() / 2);
                let mut written = Box::pin(write(sh, a.to_vec(), unsure)).await;
                written.extend(Box::pin(write(sh, b.to_vec(), unsure)).await);
                return written;
            }
            // Only errors that may pass are worth retrying (a refusal is split above, or given
            // up at once after a hard shutdown).
            Err(e @ (Error::Unavailable(_) | Error::Database(_) | Error::Closed))
                if tries.left() && !hard.is_cancelled() =>
            {
                unsure = true;
                if !warned {
                    warned = true;
                    warn!(error = %e, jobs = fences.len(), "recording completions failed; retrying");
                }
                sh.failed();
                tries.pause(hard).await;
            }
            Err(e) => {
                warn!(error = %e, jobs = fences.len(), "giving up on recording completions; this worker's reconcile puts the jobs back to run again");
                return vec![Written::GivenUp; fences.len()];
            }
        }
    }
}

/// Of the completions `written` reads as fenced off, those an earlier write committed (the
/// job is `completed` by that very attempt) are written after all. A failed look leaves them
/// fenced off: their jobs' rows are right either way, only their ends go untold.
async fn confirm(sh: &Shared, fences: &[JobFence], written: &mut [Written]) {
    let (off, fenced): (Vec<&mut Written>, Vec<JobFence>) = written
        .iter_mut()
        .zip(fences)
        .filter(|(w, _)| **w == Written::FencedOff)
        .map(|(w, f)| (w, f.clone()))
        .unzip();
    if fenced.is_empty() {
        return;
    }
    match sh.store.job_completed_already(&fenced).await {
        Ok(done) => {
            for (w, done) in off.into_iter().zip(done) {
                if done {
                    *w = Written::Completed;
                }
            }
        }
        Err(e) => {
            debug!(error = %e, jobs = fenced.len(), "could not tell which completions an earlier write committed; their ends go untold");
        }
    }
}

/// A completion the database refused on its own (its batch's other completions were
/// written): its attempt is recorded as failed with the database's words, so the job is
/// retried as its attempts allow (after porter's default backoff: the completer does not know
/// the kind's) and ends discarded, rather than put back as unstarted at every reconcile, for
/// good. Given up on when that write fails too.
async fn refuse(sh: &Shared, fence: &JobFence, e: &Error) -> Written {
    warn!(job_id = fence.id, attempt = fence.attempt, error = %e,
          "the database refused this job's completion alone; recording its attempt as failed");
    let params = crate::store::JobFailParams {
        fence: fence.clone(),
        error: format!("the job returned, but the database refused its completion: {e}"),
        trace: None,
        retry_in: crate::job::default_backoff(fence.attempt),
        discard: false,
    };
    match sh.store.job_fail(params).await {
        // A cancel requested meanwhile ends the failure cancelled.
        Ok(row) => Written::Refused(match row.state {
            crate::job::JobState::Discarded => AttemptEnd::Discarded,
            crate::job::JobState::Cancelled => AttemptEnd::Cancelled,
            _ => AttemptEnd::Retryable,
        }),
        Err(Error::Fenced { .. }) => Written::FencedOff,
        Err(e) => {
            warn!(job_id = fence.id, error = %e, "recording the refused completion as a failure failed too; this worker's reconcile puts the job back to run again");
            Written::GivenUp
        }
    }
}
