//! One producer per queue: claims due jobs ahead of the queue's free slots into a small local
//! queue, and its dispatcher starts them as slots free up; sleeps until a wake-up or the poll
//! interval when the queue is empty.
//!
//! Two budgets per queue (issue 14): `concurrency` **slots** (jobs running at once; a slot is
//! freed as soon as its job returns, before its outcome is written) and
//! [`HOLD_FACTOR`] × `concurrency` **held** jobs (claimed and not yet recorded: waiting in the
//! local queue, running, or finished with the outcome still being written). A held permit is
//! given back only once the outcome is written (or fenced off, or given up on), so a crash can
//! make at most that many jobs run again. Claiming ahead is paced by how fast jobs finish: a
//! queue whose jobs take long holds (almost) nothing beyond its running jobs, so it hoards
//! nothing other workers could run.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::slot::Slot;
use super::{executor, Ctx, MAX_CLAIM};
use crate::job::JobRow;
use crate::store::{ClaimAhead, JobClaimParams, JobReleaseParams};

/// How soon a producer whose claim a queue limit held back looks again.
const LIMIT_RECHECK: Duration = Duration::from_millis(50);
/// A producer held back by a queue limit claims again once the outcomes of
/// `concurrency / ROOM_SHARE` of its jobs (of all it holds, when fewer) are written, or after
/// [`LIMIT_RECHECK`].
const ROOM_SHARE: usize = 8;
/// Jobs a queue holds claimed and unrecorded, per slot: so at most `HOLD_FACTOR × concurrency`
/// jobs can run again after a crash (at most `concurrency` of them were running). Four, not
/// two: a queue of quick jobs keeps a claim and a completion batch in flight while its slots
/// run the next ones, and at 32 slots on Postgres two held per slot left the slots idle for
/// most of each claim's round trip (issue 14; the README's benchmarks have the figures).
pub const HOLD_FACTOR: usize = 4;
/// Longest a job claimed ahead may wait for a slot (or half the lease, when shorter); one that
/// waited longer is given back unstarted: its claim time counts toward the stuck limit (at
/// least 30 s), and its lease is only as fresh as this worker's last heartbeat.
pub const MAX_WAIT: Duration = Duration::from_secs(10);
/// The window over which the pace of finishing jobs is measured (see [`Pace`]).
const PACE_WINDOW: Duration = Duration::from_secs(1);
/// Longest a producer whose order was filled short holds back a wake-up that came meanwhile
/// before claiming itself, unless another fill comes first (see `claim`).
const RECHECK: Duration = Duration::from_millis(10);
/// Jobs given back at once, concurrently.
const GIVE_BACK_AT_ONCE: usize = 16;
/// The error kept in the history of a job claimed ahead of a free slot and given back without
/// having started (at shutdown, or after waiting [`MAX_WAIT`]). No attempt is used up.
pub const GIVEN_BACK: &str = "claimed ahead of a free slot; given back unstarted";

/// The error kept in the history of a job claimed ahead of a free slot and given back without
/// having started because its queue was paused or given other limits while it waited (it was
/// claimed under what changed). No attempt is used up.
pub const QUEUE_CHANGED: &str =
    "its queue was paused or given other limits while it waited for a slot; given back unstarted";

/// The error kept in the history of a job claimed ahead of a free slot and given back without
/// having started because a change of its queue was heard of and the queue's count of changes
/// could not be read (so it may have been claimed under what changed). No attempt is used up.
pub const QUEUE_CHANGES_UNREAD: &str =
    "its queue's pauses and limits could not be read while it waited for a slot; given back unstarted";

/// What the dispatcher knows of its queue's pauses and changes of limits (see `dispatch`).
#[derive(Default)]
struct Changes {
    /// When a change was heard of but its count could not be read: every job claimed before
    /// then counts as claimed before the change.
    unread: Option<Instant>,
}

impl Changes {
    /// Reads the queue's count of changes once a change was heard of (`control`).
    async fn hear(&mut self, ctx: &Ctx, q: &Queue, control: &crate::store::WakeupSubscription) {
        if control.take() {
            self.read(ctx, q).await;
        }
    }

    async fn read(&mut self, ctx: &Ctx, q: &Queue) {
        match ctx.store.queue_changes(&q.name).await {
            Ok(n) => {
                q.changes.fetch_max(n, Ordering::AcqRel);
            }
            Err(e) => {
                warn!(queue = q.name, error = %e, "reading how often the queue was paused or given other limits failed; giving back the jobs claimed ahead so far");
                self.unread = Some(Instant::now());
            }
        }
    }

    /// Whether `job` was claimed before the queue's last change known here.
    fn claimed_before(&self, q: &Queue, job: &Claimed) -> bool {
        self.why_given_back(q, job).is_some()
    }

    /// Why `job` is given back, if it was claimed before the queue's last change known here:
    /// a change read ([`QUEUE_CHANGED`]), or one heard of whose count could not be read
    /// ([`QUEUE_CHANGES_UNREAD`]: until 6 Dec such jobs were said to be given back for a
    /// pause or a new limit that nobody made).
    fn why_given_back(&self, q: &Queue, job: &Claimed) -> Option<&'static str> {
        if job.changes < q.changes.load(Ordering::Acquire) {
            Some(QUEUE_CHANGED)
        } else if self.unread.is_some_and(|t| job.claimed_at <= t) {
            Some(QUEUE_CHANGES_UNREAD)
        } else {
            None
        }
    }
}

/// A job claimed ahead, waiting in the local queue for a slot.
pub(super) struct Claimed {
    row: JobRow,
    held: Slot,
    /// When the claim was sent (so its wait is never underestimated).
    claimed_at: Instant,
    /// The cancel requests this process had heard of when the claim was sent
    /// ([`crate::store::Wakeup::cancel_wakeups`]): a job whose start finds the count moved on
    /// asks whether it was cancelled meanwhile.
    cancels_heard: u64,
    /// The queue's count of changes known here when the claim was sent ([`Queue::changes`]):
    /// one claimed under a smaller count than is known at its start is given back.
    changes: i64,
}

/// A producer's standing order for the completer (claiming along). While the producer waits
/// for new jobs (its last claim came up short), the completer claims for it in the write of
/// completions of its queue (see [`crate::store::Store::job_complete_and_claim`]): the jobs those completions
/// made available (a workflow's next steps) are claimed at once, not after a wake-up and a
/// claim of the producer's own. The completer claims within the producer's budgets, as the producer would: for
/// its free slots and as far ahead as its pace allows, within the held budget, to which the
/// completed jobs' held permits go back (they are handed on to the jobs claimed).
pub(super) struct Feed {
    q: Arc<Queue>,
    kinds: Vec<String>,
    order: std::sync::Mutex<Order>,
    /// The local queue; `None` once the producer stopped claiming.
    local: std::sync::Mutex<Option<mpsc::UnboundedSender<Claimed>>>,
    /// Notified when the completer has filled (or dropped) a taken order.
    filled: Notify,
}

/// Why a producer waiting for jobs woke.
#[derive(Debug, Clone, Copy)]
enum Woken {
    /// A wake-up of its queue.
    Notified,
    /// The poll interval passed.
    Poll,
    /// Wake-ups held back after a short fill are due.
    HoldOver,
    /// The completer filled its order.
    Filled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    None,
    /// The producer waits for jobs; `ahead` is how far ahead of its free slots it may claim.
    Posted {
        ahead: usize,
    },
    /// The completer is claiming for it.
    Taken,
    /// The completer claimed; `full` when it took all it asked for (there may be more),
    /// `took` when it took any.
    Filled {
        full: bool,
        took: bool,
    },
}

/// What became of the claim of a taken order.
pub(super) enum Claim {
    /// Not made (its write failed): the producer claims itself.
    NotMade,
    /// These jobs, to start.
    Jobs(Vec<JobRow>),
    /// The jobs of a write too slow to keep the reconcile waiting (see the completer): those a
    /// reconcile took for strays meanwhile go back unstarted, the others start.
    Late {
        start: Vec<JobRow>,
        back: Vec<JobRow>,
    },
}

impl Claim {
    /// How many of its jobs go back unstarted.
    pub(super) fn given_back(&self) -> usize {
        match self {
            Claim::Late { back, .. } => back.len(),
            Claim::NotMade | Claim::Jobs(_) => 0,
        }
    }
}

/// An order the completer took: it claims with `params` in its next write. One dropped
/// without being filled (its write panicked, or the completer's task was dropped) counts as
/// a claim not made, so that its producer, which waits for it, claims itself.
pub(super) struct TakenOrder {
    feed: Arc<Feed>,
    pub params: JobClaimParams,
    /// The queue's count of changes known when the order was taken, before its claim.
    changes: i64,
}

impl Drop for TakenOrder {
    fn drop(&mut self) {
        let mut order = self.feed.order.lock().unwrap_or_else(|p| p.into_inner());
        if *order == Order::Taken {
            *order = Order::Filled {
                full: true,
                took: false,
            };
            drop(order);
            self.feed.filled.notify_one();
        }
    }
}

/// Takes the standing orders of the queues whose completions (`completions`, by queue) the
/// completer is about to write, unless claiming has stopped or this worker's heartbeat is
/// overdue. Each asks for what the producer would claim now, counting the held permits the
/// completions give back.
pub(super) fn take_orders(ctx: &Ctx, completions: &[(String, usize)]) -> Vec<TakenOrder> {
    if ctx.stop_claiming.is_cancelled() || !ctx.heartbeat_fresh() {
        return Vec::new();
    }
    let feeds = ctx.feeds.lock().unwrap_or_else(|p| p.into_inner());
    let mut taken = Vec::new();
    for (queue, completed) in completions {
        let Some(feed) = feeds.get(queue) else {
            continue;
        };
        let mut order = feed.order.lock().unwrap_or_else(|p| p.into_inner());
        let Order::Posted { ahead } = *order else {
            continue;
        };
        let q = &feed.q;
        let limit = (q.slots.available_permits() + ahead)
            .saturating_sub(q.waiting.load(Ordering::Acquire))
            .min(q.held.available_permits() + completed)
            .min(MAX_CLAIM);
        if limit == 0 {
            continue;
        }
        *order = Order::Taken;
        taken.push(TakenOrder {
            changes: q.changes.load(Ordering::Acquire),
            feed: feed.clone(),
            params: JobClaimParams {
                queue: q.name.clone(),
                kinds: feed.kinds.clone(),
                limit: limit as u32,
                worker_id: ctx.identity.id.clone(),
            },
        });
    }
    taken
}

/// Hands the jobs claimed for a taken order to its producer's local queue (or gives them back
/// when it stopped claiming meanwhile, or when they came late), with held permits: first those
/// of the queue's written completions (`permits`, whose unused rest the completer gives back),
/// then free ones. The claimed jobs must already be in `owned` and counted as started.
pub(super) async fn fill_order(
    ctx: &Ctx,
    order: TakenOrder,
    claim: Claim,
    permits: &mut Vec<Slot>,
    (claimed_at, cancels_heard): (Instant, u64),
) {
    let feed = &order.feed;
    let q = &feed.q;
    // A claim not made, or made late, leaves the producer to claim itself.
    let (full, took, to_start, mut spare) = match claim {
        Claim::Jobs(jobs) => (
            jobs.len() as u32 >= order.params.limit,
            !jobs.is_empty(),
            jobs,
            Vec::new(),
        ),
        Claim::NotMade => (true, false, Vec::new(), Vec::new()),
        Claim::Late { start, back } => (true, !start.is_empty(), start, back),
    };
    let mut jobs = Vec::new();
    for row in to_start {
        let held = match permits.pop() {
            Some(held) => Some(held),
            None => q
                .held
                .clone()
                .try_acquire_owned()
                .ok()
                .map(|p| Slot::new(p, q.changed.clone())),
        };
        match held {
            Some(held) => jobs.push(Claimed {
                row,
                held,
                claimed_at,
                cancels_heard,
                changes: order.changes,
            }),
            // Cannot happen (the order asked for no more than were free, and only its taker
            // takes them meanwhile); were it to, the job goes back unstarted.
            None => spare.push(row),
        }
    }
    q.waiting.fetch_add(jobs.len(), Ordering::AcqRel);
    // Once the producer stopped claiming (no sender), the jobs are given back below.
    if let Some(tx) = feed
        .local
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
    {
        for job in jobs.drain(..) {
            // The dispatcher receives until the sender is dropped (under this lock).
            let _ = tx.send(job);
        }
    }
    // Those not sent are in `waiting` already; the spare ones join them.
    q.waiting.fetch_add(spare.len(), Ordering::AcqRel);
    let mut back: Vec<(JobRow, Option<Slot>)> = spare.into_iter().map(|r| (r, None)).collect();
    back.extend(jobs.into_iter().map(|j| (j.row, Some(j.held))));
    // Given back before the producer hears of the fill: until they are, these jobs are
    // claimed and unrecorded, most without a held permit (a late claim's), and the producer,
    // which waits for this order, would claim its whole budget beside them.
    if !back.is_empty() {
        give_back_rows(ctx, q, back).await;
    }
    *feed.order.lock().unwrap_or_else(|p| p.into_inner()) = Order::Filled { full, took };
    feed.filled.notify_one();
}

/// What the producer and the dispatcher of one queue share.
struct Queue {
    name: String,
    concurrency: usize,
    slots: Arc<Semaphore>,
    held: Arc<Semaphore>,
    /// Notified whenever a slot or a held permit is given back.
    changed: Arc<Notify>,
    /// Jobs in the local queue.
    waiting: AtomicUsize,
    /// Jobs of this queue that returned, ever.
    finished: Arc<AtomicU64>,
    /// How many times the queue was paused or given other limits, as last read here (as the
    /// producer started, then at each change heard of).
    changes: AtomicI64,
}

/// How many jobs to claim ahead of free slots: as many as finished in the last
/// [`PACE_WINDOW`] (or the current one, when more), at most what the held budget leaves
/// beside the slots (`HOLD_FACTOR - 1` times the concurrency). Quick jobs get a full local
/// queue; a queue of long jobs claims only for its free slots, as without it.
struct Pace {
    window_start: Instant,
    count_at_start: u64,
    last_window: u64,
}

impl Pace {
    fn new() -> Self {
        Pace {
            window_start: Instant::now(),
            count_at_start: 0,
            last_window: 0,
        }
    }

    fn ahead(&mut self, finished: u64, concurrency: usize) -> usize {
        if self.window_start.elapsed() >= PACE_WINDOW {
            self.last_window = finished - self.count_at_start;
            self.window_start = Instant::now();
            self.count_at_start = finished;
        }
        let pace = self.last_window.max(finished - self.count_at_start);
        (pace as usize).min(concurrency * (HOLD_FACTOR - 1))
    }
}

pub(super) async fn run(ctx: Arc<Ctx>, queue: String, concurrency: usize) {
    let changed = Arc::new(Notify::new());
    let q = Arc::new(Queue {
        name: queue,
        concurrency,
        slots: Arc::new(Semaphore::new(concurrency)),
        held: Arc::new(Semaphore::new(concurrency * HOLD_FACTOR)),
        changed,
        waiting: AtomicUsize::new(0),
        finished: Arc::new(AtomicU64::new(0)),
        changes: AtomicI64::new(0),
    });
    // Before any claim: a change after the count is read is heard of. (A count that cannot be
    // read stays 0: the first change heard of then gives back what was claimed so far.)
    let control = ctx.store.wakeup().subscribe_control(&q.name);
    if let Ok(n) = ctx.store.queue_changes(&q.name).await {
        q.changes.store(n, Ordering::Release);
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let feed = Arc::new(Feed {
        q: q.clone(),
        kinds: ctx.workers.kinds(),
        order: std::sync::Mutex::new(Order::None),
        local: std::sync::Mutex::new(Some(tx)),
        filled: Notify::new(),
    });
    // One producer per queue name (`Runtime::run` refuses a name given twice): the completed
    // jobs' held permits go back to the semaphore they came from.
    ctx.feeds
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(q.name.clone(), feed.clone());
    let claiming = async {
        claim(ctx.clone(), q.clone(), feed.clone()).await;
        ctx.feeds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&q.name);
        // Closes the local queue (an order filled from now on gives its jobs back).
        feed.local.lock().unwrap_or_else(|p| p.into_inner()).take();
    };
    tokio::join!(claiming, dispatch(ctx.clone(), q.clone(), rx, control));
}

/// Claims into the local queue; returns once claiming stops.
async fn claim(ctx: Arc<Ctx>, q: Arc<Queue>, feed: Arc<Feed>) {
    let wakeup = ctx.store.wakeup().subscribe(&q.name);
    let kinds = feed.kinds.clone();
    let mut failures = 0u32;
    let mut pace = Pace::new();
    // What the queue's last claim said of its limits: a rate-limited queue is claimed for
    // free slots only (a claimed job counts as a start at its claim, so it must start at
    // once); one with concurrency limits is claimed ahead within bounds the claim keeps.
    let mut limited = false;
    let mut rate_limited = false;
    loop {
        if ctx.stop_claiming.is_cancelled() {
            return;
        }
        // Claim for the free slots, and ahead of them as fast as jobs finish, within the held
        // budget.
        let (want, hint, ahead) = loop {
            // A rate-limited queue claims only for free slots: a job claimed ahead would start
            // later than the claim its rate limit counted (two windows' starts could then fall
            // in one).
            let ahead = if rate_limited {
                0
            } else {
                pace.ahead(q.finished.load(Ordering::Acquire), q.concurrency)
            };
            let waiting = q.waiting.load(Ordering::Acquire);
            let for_slots = q.slots.available_permits().saturating_sub(waiting);
            let want = (q.slots.available_permits() + ahead)
                .saturating_sub(waiting)
                .min(q.held.available_permits())
                .min(MAX_CLAIM);
            if want > 0 {
                // Read after `waiting` (see `ClaimAhead::in_slots`); a job takes its slot
                // before it leaves `waiting`.
                let in_slots = q.concurrency - q.slots.available_permits();
                let hint = ClaimAhead {
                    ahead: (want - for_slots.min(want)) as u32,
                    waiting: waiting as u32,
                    in_slots: in_slots as u32,
                    limited,
                };
                break (want, hint, ahead);
            }
            tokio::select! {
                _ = q.changed.notified() => {}
                // The pace changes with time too.
                _ = tokio::time::sleep(PACE_WINDOW) => {}
                _ = ctx.stop_claiming.cancelled() => return,
            }
        };
        // A worker whose heartbeat is overdue takes on no new work until it is recorded again.
        if !ctx.may_claim().await {
            return;
        }
        let params = JobClaimParams {
            queue: q.name.clone(),
            kinds: kinds.clone(),
            limit: want as u32,
            worker_id: ctx.identity.id.clone(),
        };
        let claimed_at = Instant::now();
        let cancels_heard = ctx.store.wakeup().cancel_wakeups(&ctx.identity.id);
        let changes = q.changes.load(Ordering::Acquire);
        // Claims hold the reconcile off until their jobs are known (see `reconcile`), but for
        // at most an eighth of the lease, as a claim along does (see the completer): a claim
        // that stalls must not keep the reconcile waiting, and behind it (the lock favours a
        // waiting writer) every other queue's claims.
        let claiming = ctx.claiming.read().await;
        let since = ctx.strays.mark();
        let claim = ctx.store.job_claim_ahead(params, hint);
        tokio::pin!(claim);
        let (result, claiming) = match tokio::time::timeout(ctx.config.lease / 8, &mut claim).await
        {
            Ok(result) => (result, claiming),
            Err(_) => {
                drop(claiming);
                let result = claim.await;
                (result, ctx.claiming.read().await)
            }
        };
        let (jobs, held_back, more_at_once, back) = match result {
            Ok(claimed) => {
                let (mut jobs, held_back, more_at_once) =
                    (claimed.jobs, claimed.held_back, claimed.more_at_once);
                limited = claimed.limited;
                rate_limited = claimed.rate_limited;
                ctx.owned.insert_all(jobs.iter().map(|j| (j.id, j.attempt)));
                // A reconcile that compared while the claim ran on without the lock may have
                // taken some of its jobs for strays, and puts them back: those go back
                // unstarted (fenced off where the reconcile's came first), so that none runs
                // beside its own rerun. The others start.
                let back: Vec<JobRow> = match ctx.strays.taken_since(since) {
                    None => Vec::new(),
                    Some(taken) => {
                        let (back, keep) = jobs
                            .into_iter()
                            .partition(|j| taken.contains(j.id, j.attempt));
                        jobs = keep;
                        back
                    }
                };
                drop(claiming);
                if failures > 0 {
                    info!(queue = q.name, "claiming works again");
                }
                failures = 0;
                (jobs, held_back, more_at_once, back)
            }
            Err(e) => {
                // A claim whose reply was lost may still have taken jobs: the reconcile finds
                // them (running under this worker, unknown to it) and puts them back.
                drop(claiming);
                failures += 1;
                if failures == 1 {
                    warn!(queue = q.name, error = %e, "claiming jobs failed; retrying");
                }
                let backoff = Duration::from_millis(100 * u64::from(failures.min(50)));
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = ctx.stop_claiming.cancelled() => return,
                }
                continue;
            }
        };
        let claimed = jobs.len();
        if claimed == 0 && back.is_empty() && !ctx.heartbeat_fresh() {
            // The claim statement takes nothing for a worker whose recorded heartbeat is
            // overdue (a claim sent before a stall, run after it): claim again once a heartbeat
            // is recorded, not at the next wake-up, which a backlog never sends.
            continue;
        }
        ctx.completer.started(claimed);
        q.waiting.fetch_add(claimed, Ordering::AcqRel);
        for row in jobs {
            // Only this task takes held permits while it claims (the completer takes some for
            // an order it took, which this task waits for), and it claimed no more than were free.
            let held = q
                .held
                .clone()
                .try_acquire_owned()
                .expect("a held permit per claimed job");
            let job = Claimed {
                row,
                held: Slot::new(held, q.changed.clone()),
                claimed_at,
                cancels_heard,
                changes,
            };
            // The dispatcher receives until the sender is dropped, after this task returns.
            if let Some(local) = feed
                .local
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
            {
                let _ = local.send(job);
            }
        }
        // Given back once the others are on their way: on a database slow enough to make the
        // claim late, the releases may be slow too.
        let gave_back = !back.is_empty();
        if gave_back {
            warn!(queue = q.name, jobs = back.len(), "a claim took too long to keep the reconcile waiting, which took jobs it claimed for strays; giving them back");
            ctx.completer.started(back.len());
            q.waiting.fetch_add(back.len(), Ordering::AcqRel);
            give_back_rows(&ctx, &q, back.into_iter().map(|j| (j, None)).collect()).await;
        }
        if claimed == want || gave_back || (held_back && claimed > 0 && more_at_once) {
            // The queue may hold more: claim again as soon as there is room. (A claim held
            // back by a per-key limit that still took jobs may find more of other keys at once;
            // jobs given back are due again.)
            continue;
        }
        if !held_back {
            // Nothing more is due. A queue without limits leaves the completer a standing
            // order: jobs its completions make available are claimed in their write (see
            // `Feed`). A queue with limits claims through them, here.
            let post = !limited && !rate_limited;
            let deadline = Instant::now() + ctx.config.poll_interval;
            // After a short fill, wake-ups are held back for a moment (see below): until when,
            // and whether one came meanwhile.
            let mut hold: Option<Instant> = None;
            let mut held = false;
            loop {
                if post {
                    feed.post(ahead);
                }
                let woken = tokio::select! {
                    _ = wakeup.notified() => Woken::Notified,
                    _ = tokio::time::sleep_until(deadline) => Woken::Poll,
                    _ = tokio::time::sleep_until(hold.unwrap_or(deadline)), if hold.is_some() => Woken::HoldOver,
                    _ = feed.filled.notified(), if post => Woken::Filled,
                    _ = ctx.stop_claiming.cancelled() => return,
                };
                // Withdraw the order, or wait for the completer to fill the one it took.
                let order = loop {
                    let order = feed.withdraw();
                    if order != Order::Taken {
                        break order;
                    }
                    tokio::select! {
                        _ = feed.filled.notified() => {}
                        _ = ctx.stop_claiming.cancelled() => return,
                    }
                };
                match (order, woken) {
                    // A fill that took nothing while this worker's heartbeat is overdue may
                    // have been refused for it (see above): claim once one is recorded.
                    (Order::Filled { took: false, .. }, _) if !ctx.heartbeat_fresh() => break,
                    // The completer took all it asked for: more may be due.
                    (Order::Filled { full: true, .. }, _) | (_, Woken::Poll) => break,
                    // A short fill that took jobs: its claim saw everything committed before
                    // it, so also what earlier wake-ups announced. Its own commit wakes this
                    // queue too (the write made jobs available), now or in a moment: claiming
                    // for that would find nothing and delay the next write. So wake-ups wait
                    // for the next fill or, for at most RECHECK, claim then.
                    (Order::Filled { took: true, .. }, w) => {
                        hold = Some(Instant::now() + RECHECK);
                        held = matches!(w, Woken::Notified);
                    }
                    // A fill that took nothing covers the wake-ups before it.
                    (Order::Filled { .. }, Woken::Filled) => held = false,
                    (_, Woken::Notified) if hold.is_some() => held = true,
                    (_, Woken::HoldOver) if held => break,
                    (_, Woken::HoldOver) => hold = None,
                    // The order was not taken: claim.
                    (_, Woken::Notified) => break,
                    // A stale notification.
                    (_, Woken::Filled) => {}
                }
            }
            continue;
        }
        // Jobs held back by a queue limit wait for room: this worker's jobs whose outcomes
        // are written (a running row counts against the limit until then), or other
        // processes' (which wake nobody here: look again soon rather than at the next poll).
        // Claiming after each one job's outcome would take one job (or none) per claim, and
        // each claim costs as much as a full one: wait until a share of what this worker
        // holds is written, a completion batch.
        let deadline = Instant::now() + LIMIT_RECHECK.min(ctx.config.poll_interval);
        let held_then = q.held.available_permits();
        let holding = q.concurrency * HOLD_FACTOR - held_then;
        let enough = (q.concurrency / ROOM_SHARE).min(holding).max(1);
        loop {
            tokio::select! {
                _ = wakeup.notified() => break,
                _ = tokio::time::sleep_until(deadline) => break,
                _ = q.changed.notified() => {
                    if q.held.available_permits() >= held_then + enough {
                        break;
                    }
                }
                _ = ctx.stop_claiming.cancelled() => return,
            }
        }
    }
}

impl Feed {
    /// Leaves a standing order for the completer.
    fn post(&self, ahead: usize) {
        *self.order.lock().unwrap_or_else(|p| p.into_inner()) = Order::Posted { ahead };
    }

    /// Takes the order back: what it was (`Taken` stays as it is: the completer is claiming).
    fn withdraw(&self) -> Order {
        let mut order = self.order.lock().unwrap_or_else(|p| p.into_inner());
        let was = *order;
        if was != Order::Taken {
            *order = Order::None;
        }
        was
    }
}

/// Starts the jobs of the local queue as slots free up. Once claiming stops, gives back every
/// job that has not started (fenced, no attempt used), and returns when the local queue is
/// closed and empty.
///
/// A job claimed before its queue was last paused or given other limits is given back, not
/// started: a paused queue starts nothing, and a limit counts what starts under it (until 6 Dec
/// such jobs started as their slots freed, for up to `MAX_WAIT` after the pause: review of
/// 6 Dec, 6 started after `porter queues pause` returned). The database counts the changes
/// (`Store::queue_changes`); each claim is tagged with the count known here when it was sent
/// (read as the producer started, then at each change heard of through `control`: this
/// process's own at once, other processes' through NOTIFY on PostgreSQL and the change
/// watcher on SQLite). A job whose tag is below the count known at its start goes back. A job
/// claimed after a change but before this process heard of it is given back too (needlessly,
/// and claimed again); one that starts before the news arrives (the NOTIFY's delivery, the
/// watcher's next look: about a millisecond) starts. (A first version compared the change's
/// time with the claim's, which a change taken before its commit, or a limited claim holding
/// the queue's row across it, defeated: review of 6 Dec.)
async fn dispatch(
    ctx: Arc<Ctx>,
    q: Arc<Queue>,
    mut local: mpsc::UnboundedReceiver<Claimed>,
    control: crate::store::WakeupSubscription,
) {
    let max_wait = MAX_WAIT.min(ctx.config.lease / 2);
    let mut changes = Changes::default();
    // Jobs taken from the local queue while others were given back, in their order.
    let mut pending: VecDeque<Claimed> = VecDeque::new();
    'jobs: loop {
        let job = match pending.pop_front() {
            Some(job) if !ctx.stop_claiming.is_cancelled() => job,
            Some(job) => {
                pending.push_front(job);
                break;
            }
            None => tokio::select! {
                biased;
                _ = ctx.stop_claiming.cancelled() => break,
                job = local.recv() => match job {
                    Some(job) => job,
                    None => break,
                },
                // Read as soon as heard of, idle too: the claims after it carry the new
                // count. (Until 6 Dec an idle dispatcher read it only when its next job came,
                // claimed under the old count and so given back: review of 6 Dec.)
                _ = control.notified() => {
                    changes.read(&ctx, &q).await;
                    continue;
                }
            },
        };
        changes.hear(&ctx, &q, &control).await;
        if changes.claimed_before(&q, &job) {
            give_back_changed(&ctx, &q, job, &mut local, &mut pending, &changes).await;
            continue;
        }
        // Its claim time counts toward the stuck limit, and its lease is this worker's
        // heartbeat: a job that waited too long for a slot, or whose lease may be running out,
        // is not started but given back.
        let deadline = job.claimed_at + max_wait;
        let slot = loop {
            tokio::select! {
                biased;
                _ = ctx.stop_claiming.cancelled() => {
                    give_back(&ctx, &q, vec![job]).await;
                    break 'jobs;
                }
                slot = q.slots.clone().acquire_owned() => {
                    break Some(slot.expect("the slots are never closed"));
                }
                _ = control.notified() => {
                    changes.read(&ctx, &q).await;
                    if changes.claimed_before(&q, &job) {
                        give_back_changed(&ctx, &q, job, &mut local, &mut pending, &changes).await;
                        continue 'jobs;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => break None,
            }
        };
        changes.hear(&ctx, &q, &control).await;
        if changes.claimed_before(&q, &job) {
            drop(slot);
            give_back_changed(&ctx, &q, job, &mut local, &mut pending, &changes).await;
            continue;
        }
        let slot = match slot {
            Some(slot) if Instant::now() <= deadline && ctx.heartbeat_fresh() => {
                Slot::new(slot, q.changed.clone())
            }
            late => {
                drop(late);
                debug!(
                    job_id = job.row.id,
                    "a job claimed ahead waited too long for a slot; giving it back"
                );
                give_back(&ctx, &q, vec![job]).await;
                continue;
            }
        };
        q.waiting.fetch_sub(1, Ordering::AcqRel);
        let Claimed {
            row,
            held,
            cancels_heard,
            ..
        } = job;
        ctx.jobs.spawn(executor::execute(
            ctx.clone(),
            row,
            executor::Slots {
                slot,
                held,
                finished: q.finished.clone(),
            },
            cancels_heard,
        ));
    }
    // Claiming stopped: what is still queued was never started. Give it back now, rather than
    // leave it to the shutdown's reconcile or another worker's rescuer.
    let mut rest: Vec<Claimed> = pending.drain(..).collect();
    while let Some(job) = local.recv().await {
        rest.push(job);
    }
    if !rest.is_empty() {
        info!(
            queue = q.name,
            jobs = rest.len(),
            "giving back jobs claimed ahead and not started"
        );
        give_back(&ctx, &q, rest).await;
    }
}

/// Gives jobs claimed ahead back unstarted: `available` again at once, no attempt used
/// (fenced: one rescued meanwhile is left alone).
async fn give_back(ctx: &Ctx, q: &Queue, jobs: Vec<Claimed>) {
    let rows = jobs.into_iter().map(|j| (j.row, Some(j.held))).collect();
    give_back_rows(ctx, q, rows).await
}

/// [`give_back`] of `job`, claimed before its queue was paused or given other limits, with
/// every other such job waiting here (in `pending`, or in the local queue, whose jobs claimed
/// since go to `pending` in their order): at once, not one at a time between starts.
async fn give_back_changed(
    ctx: &Ctx,
    q: &Queue,
    job: Claimed,
    local: &mut mpsc::UnboundedReceiver<Claimed>,
    pending: &mut VecDeque<Claimed>,
    changes: &Changes,
) {
    let mut back = vec![job];
    let mut keep = VecDeque::new();
    let waiting = pending
        .drain(..)
        .chain(std::iter::from_fn(|| local.try_recv().ok()));
    for claimed in waiting.collect::<Vec<_>>() {
        if changes.claimed_before(q, &claimed) {
            back.push(claimed);
        } else {
            keep.push_back(claimed);
        }
    }
    *pending = keep;
    debug!(
        queue = q.name,
        jobs = back.len(),
        "the queue was paused or given other limits while these waited for a slot (or that could not be read); giving them back"
    );
    let (unread, changed): (Vec<Claimed>, Vec<Claimed>) = back
        .into_iter()
        .partition(|j| changes.why_given_back(q, j) == Some(QUEUE_CHANGES_UNREAD));
    for (jobs, why) in [(changed, QUEUE_CHANGED), (unread, QUEUE_CHANGES_UNREAD)] {
        if !jobs.is_empty() {
            let rows = jobs.into_iter().map(|j| (j.row, Some(j.held))).collect();
            give_back_as(ctx, q, rows, why).await;
        }
    }
}

/// [`give_back`] of claimed rows counted in `waiting`, with their held permits where they have
/// one (given back once the row is).
async fn give_back_rows(ctx: &Ctx, q: &Queue, jobs: Vec<(JobRow, Option<Slot>)>) {
    give_back_as(ctx, q, jobs, GIVEN_BACK).await
}

/// [`give_back_rows`] with `reason` in the jobs' histories.
async fn give_back_as(
    ctx: &Ctx,
    q: &Queue,
    jobs: Vec<(JobRow, Option<Slot>)>,
    reason: &'static str,
) {
    q.waiting.fetch_sub(jobs.len(), Ordering::AcqRel);
    futures::stream::iter(jobs)
        .for_each_concurrent(GIVE_BACK_AT_ONCE, |(row, held)| async move {
            ctx.completer.finished();
            let fence = row.fence();
            executor::write_unstarted(ctx, &row, || {
                ctx.store.job_release(JobReleaseParams {
                    fence: fence.clone(),
                    reason: reason.to_string(),
                    started: false,
                })
            })
            .await;
            drop(held);
        })
        .await;
}
