//! Runs one claimed job: decode, run with its timeout, catch panics, then record the outcome
//! (fenced). Job args are never logged.

use std::cell::RefCell;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::slot::Slot;
use super::{Ctx, OutcomeTries, Retrying};
use crate::error::Error;
use crate::events::{guarded, panic_message, AttemptEnd, AttemptEnded, JobEvents};
use crate::job::{JobRow, JobState};
use crate::store::{JobCancelRunningParams, JobFailParams, JobReleaseParams, JobSnoozeParams};
use crate::worker::JobError;

/// Told about every failed attempt. The default, [`LogErrors`], logs through tracing.
pub trait ErrorHandler: Send + Sync + 'static {
    /// An attempt failed with an error (or timed out).
    fn handle_error(&self, job: &JobRow, error: &str);
    /// An attempt panicked.
    fn handle_panic(&self, job: &JobRow, message: &str, trace: Option<&str>);
}

/// Logs failures with job_id, kind, queue, attempt, max_attempts and the error; never args.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogErrors;

impl ErrorHandler for LogErrors {
    fn handle_error(&self, job: &JobRow, err: &str) {
        error!(job_id = job.id, kind = %job.kind, queue = %job.queue, attempt = job.attempt,
               max_attempts = job.max_attempts, error = %err, "job failed");
    }
    fn handle_panic(&self, job: &JobRow, message: &str, trace: Option<&str>) {
        error!(job_id = job.id, kind = %job.kind, queue = %job.queue, attempt = job.attempt,
               max_attempts = job.max_attempts, panic = %message, trace = trace.unwrap_or(""), "job panicked");
    }
}

enum Outcome {
    Done(Result<(), JobError>),
    Panicked {
        message: String,
        trace: Option<String>,
    },
    TimedOut(Duration),
    /// The shutdown stopped the job: while it ran, or (`started` false) before its handler
    /// ran, as a later attempt waiting for an older run of it to be gone.
    ShutDown {
        started: bool,
    },
    /// A user asked to cancel the job while it ran, or (`started` false) while it waited for
    /// a slot, before its handler ran.
    CancelledByUser {
        started: bool,
    },
    /// This run is no longer its job's (its fence is gone): a later attempt of the job started
    /// in this worker, or a look found the row rescued, cancelled or claimed again (the worker
    /// stalled past its lease). Stopped so as not to run beside the job's next run.
    TakenOver,
    /// A parent of the job ran again (an admin's retry) while it waited for a slot: given
    /// back unstarted, it is judged again by its parents.
    ParentRanAgain,
    /// The shutdown stopped the job, and it was still there [`SHUTDOWN_STOP_GRACE`] after its
    /// abort: it blocks its thread. Nothing is written: put back, it could start elsewhere
    /// beside this run; left `running` under this worker, which the shutdown then does not
    /// deregister, other workers' rescuers put it back once the lease has passed.
    StillRunning,
}

/// How long the shutdown waits for a job it stopped to be gone: an aborted job is at its next
/// await, and one still there after this blocks its thread ([`Outcome::StillRunning`]).
pub(super) const SHUTDOWN_STOP_GRACE: Duration = Duration::from_secs(1);

/// The error history entry of a job claimed ahead of a free slot and given back, unstarted,
/// because an admin retried one of its parents while it waited (it is then judged again by its
/// parents: see [`crate::store::Store::job_release`]).
pub const PARENT_RAN_AGAIN: &str =
    "a parent was retried while it waited for a slot; given back unstarted";

thread_local! {
    /// Where the panic hook leaves the location and backtrace of a panic on this thread.
    static PANIC_TRACE: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Set while this thread polls a job's work: a panic then is the job's, caught by the
    /// executor and logged as one event by its error handler.
    static IN_JOB: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Polls a job's work with [`IN_JOB`] set.
async fn in_job(
    mut work: futures::future::BoxFuture<'static, Result<(), JobError>>,
) -> Result<(), JobError> {
    std::future::poll_fn(move |cx| {
        IN_JOB.with(|f| f.set(true));
        // Reset on the way out, by unwinding too, so a panic leaves the flag clear.
        struct Clear;
        impl Drop for Clear {
            fn drop(&mut self) {
                IN_JOB.with(|f| f.set(false));
            }
        }
        let _clear = Clear;
        work.poll_unpin(cx)
    })
    .await
}

/// Whether a cancel of the job was requested since its claim, asked of the database only
/// when this process heard of a request since then. The cancel watcher looks for requests at
/// most every 100 ms (on SQLite every commit of any process wakes it): a request that came in
/// its pause, for a job whose slot freed before its next look, let the job start (review of
/// 6 Dec). A read that fails leaves the job to start, and the watcher to stop it.
async fn asked_since_its_claim(ctx: &Ctx, row: &JobRow, cancels_heard: u64) -> bool {
    asked_since(
        || ctx.store.wakeup().cancel_wakeups(&ctx.identity.id),
        cancels_heard,
        || async {
            match ctx
                .store
                .job_cancel_requests(&ctx.identity.id, &[row.id])
                .await
            {
                Ok(found) => Some(
                    found
                        .iter()
                        .any(|f| f.id == row.id && f.attempt == row.attempt),
                ),
                Err(e) => {
                    debug!(job_id = row.id, error = %e, "could not ask whether the job was cancelled before its start");
                    None
                }
            }
        },
    )
    .await
}

/// How many times [`asked_since`] reads while news keeps coming in during its reads; past
/// that the job starts and the cancel watcher, which heard the same news, stops it.
const START_GATE_READS: usize = 5;

/// The start gate's loop: reads (`read`: `Some(asked)`, or `None` when the read failed)
/// whenever the count of cancel news (`count`) moved past `heard`, and again when it moved
/// during the read: a request committed after the read's snapshot, whose news came before the
/// job registered, was otherwise left to the watcher's next look, after the job started
/// (review of 6 Dec).
async fn asked_since<F: std::future::Future<Output = Option<bool>>>(
    count: impl Fn() -> u64,
    mut heard: u64,
    mut read: impl FnMut() -> F,
) -> bool {
    for _ in 0..START_GATE_READS {
        let now = count();
        if now == heard {
            return false;
        }
        match read().await {
            Some(true) => return true,
            Some(false) => heard = now,
            None => return false,
        }
    }
    false
}

/// Chains a panic hook that keeps each panic's location and backtrace (when `RUST_BACKTRACE`
/// asks for one) for the executor, which catches the panic on the same thread. A job's panic
/// goes no further: the executor's error handler logs it as one event (one JSON line with
/// `--log-format json`), instead of the default hook's lines on stderr. Any other panic goes
/// on to the hook installed before.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let mut trace = info
                .location()
                .map(|l| format!("panicked at {l}"))
                .unwrap_or_default();
            let bt = std::backtrace::Backtrace::capture();
            if bt.status() == std::backtrace::BacktraceStatus::Captured {
                trace.push('\n');
                trace.push_str(&bt.to_string());
            }
            PANIC_TRACE.with(|t| *t.borrow_mut() = Some(trace));
            if !IN_JOB.with(|f| f.get()) {
                previous(info);
            } else {
                // The executor logs a job's panic when it fails the job; one the job catches
                // itself is still told, at debug.
                tracing::debug!(location = ?info.location().map(|l| l.to_string()), "panic inside a job");
            }
        }));
    });
}

/// What a started job holds: its slot (given back as soon as it returns) and its held permit
/// (given back once its outcome is written).
pub(super) struct Slots {
    pub slot: Slot,
    pub held: Slot,
    /// Counts the queue's jobs that returned (the producer's pace).
    pub finished: Arc<AtomicU64>,
}

/// Runs a claimed job to its end and records the outcome. `cancels_heard` is the count of
/// cancel requests its process had heard of when the claim was sent
/// ([`crate::store::Wakeup::cancel_wakeups`]).
pub(super) async fn execute(ctx: Arc<Ctx>, row: JobRow, permit: Slots, cancels_heard: u64) {
    install_panic_hook();
    let began = Instant::now();
    if let Some(what) = &row.unreadable {
        // Another program wrote what porter cannot read: no attempt would read it better.
        warn!(job_id = row.id, kind = %row.kind, unreadable = %what, "discarding a job porter could not read");
        let reason =
            format!("porter could not read this job's row (written by another program?): {what}");
        record(
            &ctx,
            &row,
            Outcome::Done(Err(JobError::Discard(reason))),
            permit,
            began,
        )
        .await;
        return;
    }
    let Some(worker) = ctx.workers.get(&row.kind).cloned() else {
        // The claim only takes kinds this process runs; this is a bug, not a job error.
        record(
            &ctx,
            &row,
            Outcome::Done(Err(JobError::msg(format!(
                "no worker for kind {}",
                row.kind
            )))),
            permit,
            began,
        )
        .await;
        return;
    };
    let cancel = ctx.stop_jobs.child_token();
    let by_user = CancellationToken::new();
    if asked_since_its_claim(&ctx, &row, cancels_heard).await {
        by_user.cancel();
    }
    let registered = ctx.running.register(row.id, row.attempt, by_user.clone());
    let registration = registered.registration;
    let taken_over = registered.taken_over;
    if let Some(earlier) = registered.earlier {
        // An earlier attempt of this job still runs here, stopped as no longer the job's (or
        // a later one runs, and this one is): never two at once. Its slot is held meanwhile.
        info!(job_id = row.id, kind = %row.kind, attempt = row.attempt, "an attempt of this job that was put back while it ran here is stopping; this one waits for it");
        tokio::select! {
            _ = earlier.cancelled() => {}
            _ = ctx.stop_jobs.cancelled() => {
                // The shutdown stops the older run too, and gives it SHUTDOWN_STOP_GRACE to be
                // gone: one still there after that blocks its thread, and this attempt is left
                // `running` (held, for rescuers once the lease has passed) rather than put back
                // for another worker to start beside it (review of 320feb9).
                let grace = SHUTDOWN_STOP_GRACE.saturating_mul(2);
                if tokio::time::timeout(grace, earlier.cancelled()).await.is_err() {
                    record(&ctx, &row, Outcome::StillRunning, permit, began).await;
                    // Not gone either: a later attempt still waiting for this one waits for
                    // the run that blocks (review of 84bae54: it was told this one was gone).
                    std::mem::forget(registration);
                    return;
                }
            }
        }
    }
    if taken_over.is_cancelled() {
        record(&ctx, &row, Outcome::TakenOver, permit, began).await;
        return;
    }
    if by_user.is_cancelled() {
        // Its cancel was requested while it waited for a slot (claimed ahead): it never starts.
        record(
            &ctx,
            &row,
            Outcome::CancelledByUser { started: false },
            permit,
            began,
        )
        .await;
        return;
    }
    if ctx.stop_jobs.is_cancelled() {
        // The shutdown stopped the jobs while this one waited for an older run of it: it
        // never starts (its handler would start after every job was told to stop).
        record(
            &ctx,
            &row,
            Outcome::ShutDown { started: false },
            permit,
            began,
        )
        .await;
        return;
    }
    if registered.parent_ran_again {
        // A parent was retried while it waited for a slot: not started beside that parent's
        // new run, but given back, and judged again by its parents.
        record(&ctx, &row, Outcome::ParentRanAgain, permit, began).await;
        return;
    }
    // Logged once the handler is about to run: a job discarded unread or cancelled while it
    // waited for its slot has an end and no start. Never the args: they may hold what must
    // not reach a log.
    debug!(job_id = row.id, kind = %row.kind, queue = %row.queue, attempt = row.attempt, "job started");
    let context = crate::worker::JobContext::new(ctx.store.clone(), row.fence());
    let started = match guarded(
        "Worker::timeout",
        |message| {
            Err(JobError::msg(format!(
                "panic while starting the job: {message}"
            )))
        },
        || worker.start(row.clone(), cancel.clone(), context.clone()),
    ) {
        Ok(started) => started,
        Err(e) => {
            record(&ctx, &row, Outcome::Done(Err(e)), permit, began).await;
            return;
        }
    };
    // Never past the kind's max_timeout: the rescuer takes a job running longer than that (and
    // a margin) for stuck and puts it back, even under a live worker, which would run it again
    // beside this run.
    let max = worker.max_timeout();
    if started.timeout > max {
        warn_overlong_timeout(&row.kind, started.timeout, max);
    }
    let timeout = started.timeout.min(max);
    let run = async move {
        match AssertUnwindSafe(in_job(started.work)).catch_unwind().await {
            Ok(result) => Outcome::Done(result),
            Err(payload) => Outcome::Panicked {
                message: panic_message(&*payload),
                trace: PANIC_TRACE.with(|t| t.borrow_mut().take()),
            },
        }
    };
    let mut task = tokio::spawn(run);
    // Biased, the job's own result first: a job that finished in the same instant as its
    // timeout, a cancel request or the shutdown keeps what it did (a success completes).
    let outcome = tokio::select! {
        biased;
        joined = &mut task => match joined {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Panicked { message: e.to_string(), trace: None },
        },
        _ = tokio::time::sleep(timeout) => {
            stop(&ctx, &mut task, &cancel, Outcome::TimedOut(timeout)).await
        }
        _ = by_user.cancelled() => stop(&ctx, &mut task, &cancel, Outcome::CancelledByUser { started: true }).await,
        _ = taken_over.cancelled() => stop(&ctx, &mut task, &cancel, Outcome::TakenOver).await,
        _ = ctx.stop_jobs.cancelled() => {
            task.abort();
            gone_after_shutdown(&mut task).await.unwrap_or(Outcome::ShutDown { started: true })
        }
    };
    // A job that watched its cancel token and returned an error because of a cancel request or
    // the shutdown was stopped by us, not failed by itself: record it as that. One that
    // succeeded before it noticed the request completes (River's rule).
    let outcome = match outcome {
        Outcome::Done(Err(_)) if by_user.is_cancelled() => {
            Outcome::CancelledByUser { started: true }
        }
        Outcome::Done(Err(_)) if ctx.stop_jobs.is_cancelled() => {
            Outcome::ShutDown { started: true }
        }
        other => other,
    };
    let still_running = matches!(outcome, Outcome::StillRunning);
    if !still_running {
        // Its handler has ended: this worker's own stuck passes leave it from now on, through
        // its last progress write too (review of b3665d9: that write, held up, let the pass
        // take the job before the outcome's was even sent).
        ctx.owned.ending(row.id, row.attempt);
    }
    // The last progress goes before the outcome: it is fenced on the job still running. A panic
    // in it (a driver's bug) is no reason to lose the outcome, which is recorded as usual
    // (review of 87d80d4: the outcome was skipped, and the job given up and run again).
    if let Err(payload) = AssertUnwindSafe(context.finish()).catch_unwind().await {
        error!(job_id = row.id, kind = %row.kind, attempt = row.attempt, panic = %panic_message(payload.as_ref()),
            "writing a job's last progress panicked; its outcome is recorded all the same");
    }
    // Marked above (a run still under way at shutdown is not, nor is it by `record`).
    record_marked(&ctx, &row, outcome, permit, began).await;
    if still_running {
        // Still under way here: never marked gone, so that a later attempt of its job in this
        // worker is not started, nor put back, beside it (the later one waits a bounded time
        // at the shutdown, then is left `running` too).
        std::mem::forget(registration);
    }
}

/// Warns, once per kind, that a job's `Worker::timeout` exceeds its kind's `max_timeout`.
fn warn_overlong_timeout(kind: &str, timeout: Duration, max: Duration) {
    static WARNED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut warned = WARNED.lock().unwrap_or_else(|p| p.into_inner());
    if warned.iter().any(|k| k == kind) {
        return;
    }
    warned.push(kind.to_string());
    warn!(kind, timeout = %humanize(timeout), max_timeout = %humanize(max),
          "a job's timeout exceeds its kind's max_timeout, which bounds it: raise max_timeout with it");
}

/// Stops a job past its timeout or whose cancel a user asked for: its token fires and its
/// future is aborted, which takes effect at its next await. It counts as stopped (its slot
/// free, its unique key freed) only once the future is gone: a job that blocks its thread ran
/// on while its slot started another job, perhaps its own next attempt, and one that never
/// yields keeps both until the stuck rescue, or until this worker shuts down (which waits
/// [`SHUTDOWN_STOP_GRACE`] for it, then leaves it `running`: [`Outcome::StillRunning`]). A job
/// that succeeded before the abort took effect completes (River's rule); otherwise it ends as
/// `stopped`.
async fn stop(
    ctx: &Ctx,
    task: &mut tokio::task::JoinHandle<Outcome>,
    cancel: &CancellationToken,
    stopped: Outcome,
) -> Outcome {
    cancel.cancel();
    task.abort();
    let finished = tokio::select! {
        joined = &mut *task => joined.ok(),
        _ = ctx.stop_jobs.cancelled() => match gone_after_shutdown(task).await {
            Some(Outcome::StillRunning) => return Outcome::StillRunning,
            other => other,
        },
    };
    match finished {
        Some(done @ Outcome::Done(Ok(()))) => done,
        _ => stopped,
    }
}

/// Waits, once the shutdown has stopped the jobs, for an aborted job to be gone: its outcome
/// when it finished first (a success completes), `None` when the abort ended it, and
/// [`Outcome::StillRunning`] when it is still there after [`SHUTDOWN_STOP_GRACE`] (it blocks
/// its thread). Until 7 Dec the shutdown put such a job back at once, and another worker could
/// start it beside this run (review of 7 Dec).
async fn gone_after_shutdown(task: &mut tokio::task::JoinHandle<Outcome>) -> Option<Outcome> {
    match tokio::time::timeout(SHUTDOWN_STOP_GRACE, &mut *task).await {
        Ok(Ok(done @ Outcome::Done(Ok(())))) => Some(done),
        Ok(_) => None,
        Err(_) => Some(Outcome::StillRunning),
    }
}

fn attempt_ended(row: &JobRow, end: AttemptEnd, began: Instant) -> AttemptEnded {
    AttemptEnded {
        job_id: row.id,
        queue: row.queue.clone(),
        kind: row.kind.clone(),
        attempt: row.attempt,
        end,
        ran_for: began.elapsed(),
    }
}

/// Logs the end of an attempt at debug (never its args) and tells the runtime's events.
pub(super) fn tell(events: &dyn JobEvents, ended: &AttemptEnded) {
    debug!(job_id = ended.job_id, kind = %ended.kind, queue = %ended.queue, attempt = ended.attempt,
           outcome = ended.end.as_str(), elapsed_ms = ended.ran_for.as_millis() as u64, "job finished");
    guarded(
        "JobEvents::attempt_ended",
        |_| (),
        || events.attempt_ended(ended),
    );
}

/// Records the outcome. The job's slot is free at once (another job may start); its held
/// permit is given back once the outcome is written (by the completer, for a completion), so
/// a crash re-runs no more than the queue holds. Once written, the runtime's events are told.
/// A panic while recording (a driver's bug, say) gives the job up, as the completer does for a
/// batch that panicked, and as a write given up on is: the reconcile puts it back, as started
/// or not as its handler was. Left held and marked ending, no stuck pass of this worker's would
/// ever take it (review of b9f6275).
async fn record(ctx: &Ctx, row: &JobRow, outcome: Outcome, slots: Slots, began: Instant) {
    if !matches!(outcome, Outcome::StillRunning) {
        // Its handler has ended (or never ran): this worker's own stuck passes leave it while
        // its outcome is written (the run of one left running at shutdown has not ended).
        ctx.owned.ending(row.id, row.attempt);
    }
    record_marked(ctx, row, outcome, slots, began).await;
}

/// [`record`] for a job already marked ending (by `execute`, as its handler ended).
async fn record_marked(ctx: &Ctx, row: &JobRow, outcome: Outcome, slots: Slots, began: Instant) {
    let started = !matches!(
        outcome,
        Outcome::ParentRanAgain
            | Outcome::CancelledByUser { started: false }
            | Outcome::ShutDown { started: false }
    );
    let recorded = record_outcome(ctx, row, outcome, slots, began);
    if let Err(payload) = AssertUnwindSafe(recorded).catch_unwind().await {
        error!(job_id = row.id, kind = %row.kind, attempt = row.attempt, panic = %panic_message(payload.as_ref()),
            "recording a job's outcome panicked; this worker's reconcile puts the job back to run again");
        ctx.owned.give_up_if_ending((row.id, row.attempt), started);
    }
}

/// [`record_marked`], unguarded.
async fn record_outcome(ctx: &Ctx, row: &JobRow, outcome: Outcome, slots: Slots, began: Instant) {
    let Slots {
        slot,
        held,
        finished,
    } = slots;
    drop(slot);
    ctx.running.settling(row.id, row.attempt);
    finished.fetch_add(1, Ordering::AcqRel);
    // `held` is kept until the outcome below is written.
    let told = |end: AttemptEnd| tell(ctx.events.as_ref(), &attempt_ended(row, end, began));
    ctx.completer.finished();
    let fence = row.fence();
    let fail =
        |error: String, trace: Option<String>, retry_in: Duration, discard: bool| JobFailParams {
            fence: fence.clone(),
            error,
            trace,
            retry_in,
            discard,
        };
    let retry_in = || {
        ctx.workers
            .get(&row.kind)
            .map_or(Duration::from_secs(1), |w| {
                guarded(
                    "Worker::next_retry",
                    |_| crate::job::default_backoff(row.attempt),
                    || w.next_retry_for(row),
                )
            })
    };
    let handle_error = |message: &str| {
        guarded(
            "ErrorHandler::handle_error",
            |_| (),
            || ctx.errors.handle_error(row, message),
        )
    };
    let params = match outcome {
        Outcome::Done(Ok(())) => {
            let ended = attempt_ended(row, AttemptEnd::Completed, began);
            ctx.completer.complete(fence, held, ended);
            return;
        }
        Outcome::Done(Err(JobError::Snooze(delay))) => {
            let written = write(ctx, row, || {
                ctx.store.job_snooze(JobSnoozeParams {
                    fence: fence.clone(),
                    delay,
                })
            })
            .await;
            // A cancel requested while it ran (not heard yet) ends it cancelled instead.
            match written.map(|r| r.state) {
                Some(JobState::Cancelled) => told(AttemptEnd::Cancelled),
                Some(_) => told(AttemptEnd::Snoozed),
                None => {}
            }
            return;
        }
        Outcome::Done(Err(JobError::Cancel(reason))) => {
            let written = write(ctx, row, || {
                ctx.store.job_cancel_running(JobCancelRunningParams {
                    started: true,
                    fence: fence.clone(),
                    reason: reason.clone(),
                })
            })
            .await;
            if written.is_some() {
                told(AttemptEnd::Cancelled);
            }
            return;
        }
        Outcome::TakenOver => {
            // No write: the job's row is no longer at this attempt under this worker (put back
            // and claimed again, rescued or cancelled meanwhile), so any would be fenced off.
            info!(job_id = row.id, kind = %row.kind, queue = %row.queue, attempt = row.attempt, "a run that was no longer its job's stopped (its job was put back, rescued or cancelled meanwhile)");
            ctx.owned.remove_all(&[(row.id, row.attempt)]);
            drop(held);
            return;
        }
        Outcome::StillRunning => {
            // No write, and the job stays held: the reconcile leaves it `running`, and the
            // shutdown does not deregister this worker (see `Ctx::still_running`).
            error!(job_id = row.id, kind = %row.kind, queue = %row.queue, attempt = row.attempt,
                "a job still runs after the shutdown stopped it: it blocks its thread (no await to stop at); left running under this worker, not put back beside its own run, for other workers' rescuers once this worker's lease has passed");
            ctx.still_running.fetch_add(1, Ordering::AcqRel);
            drop(held);
            return;
        }
        Outcome::ParentRanAgain => {
            info!(job_id = row.id, kind = %row.kind, queue = %row.queue, attempt = row.attempt, "a parent of this job was retried while it waited for a slot; giving it back unstarted");
            write_unstarted(ctx, row, || {
                ctx.store.job_release(JobReleaseParams {
                    fence: fence.clone(),
                    reason: PARENT_RAN_AGAIN.to_string(),
                    started: false,
                })
            })
            .await;
            drop(held);
            return;
        }
        Outcome::CancelledByUser { started } => {
            info!(job_id = row.id, kind = %row.kind, queue = %row.queue, attempt = row.attempt, started, "job cancelled by user");
            // Given up on, one that never started is put back by the reconcile as never started.
            let written = write_as(ctx, row, started, || {
                ctx.store.job_cancel_running(JobCancelRunningParams {
                    started,
                    fence: fence.clone(),
                    reason: crate::store::CANCELLED_BY_USER.to_string(),
                })
            })
            .await;
            if written.is_some() {
                told(AttemptEnd::Cancelled);
            }
            return;
        }
        Outcome::Done(Err(JobError::Discard(reason))) => {
            handle_error(&reason);
            fail(reason, None, Duration::ZERO, true)
        }
        Outcome::Done(Err(JobError::Failed { message, trace })) => {
            handle_error(&message);
            fail(message, trace, retry_in(), false)
        }
        Outcome::Panicked { message, trace } => {
            guarded(
                "ErrorHandler::handle_panic",
                |_| (),
                || ctx.errors.handle_panic(row, &message, trace.as_deref()),
            );
            fail(format!("panic: {message}"), trace, retry_in(), false)
        }
        Outcome::TimedOut(t) => {
            let message = format!("job timed out after {}", humanize(t));
            handle_error(&message);
            fail(message, None, retry_in(), false)
        }
        Outcome::ShutDown { started } => {
            // Stopped by us, not failed by itself: the job goes back without using up an
            // attempt, so a deploy never discards a job on its last one (issue 11.1).
            let written = write_as(ctx, row, started, || {
                ctx.store.job_release(JobReleaseParams {
                    fence: fence.clone(),
                    reason: SHUT_DOWN.to_string(),
                    started,
                })
            })
            .await;
            // A cancel requested meanwhile ends it cancelled instead (and a parent that failed
            // since the claim of one that never started: no one's cancel, told to none).
            match written {
                // (An attempt that never started ran for nothing.)
                Some(r) if r.state == JobState::Cancelled => {
                    tell_given_back(ctx, &r, if started { began } else { Instant::now() })
                }
                Some(_) => told(AttemptEnd::Released),
                None => {}
            }
            return;
        }
    };
    if let Some(failed) = write(ctx, row, || ctx.store.job_fail(params.clone())).await {
        // A cancel requested while it ran ends a failure cancelled.
        told(match failed.state {
            JobState::Discarded => AttemptEnd::Discarded,
            JobState::Cancelled => AttemptEnd::Cancelled,
            _ => AttemptEnd::Retryable,
        });
    }
}

/// The error kept in the history of a job stopped by its worker's shutdown.
const SHUT_DOWN: &str = "worker shut down";

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Writes one outcome, retrying while the database is unreachable (until a hard shutdown); a
/// fenced write is logged and dropped (the job was rescued or cancelled: this attempt's result
/// no longer counts). Answers the written row, `None` when fenced off or given up on.
pub(super) async fn write<F, Fut>(ctx: &Ctx, row: &JobRow, op: F) -> Option<JobRow>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = crate::Result<JobRow>>,
{
    write_as(ctx, row, true, op).await
}

/// [`write`] for a job whose handler was never called (a give-back of a job claimed ahead):
/// given up on, the reconcile puts it back as never started. A give-back that ended the job
/// cancelled because a user asked while it waited for a slot is told as the cancel it is
/// ([`tell_given_back`]).
pub(super) async fn write_unstarted<F, Fut>(ctx: &Ctx, row: &JobRow, op: F) -> Option<JobRow>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = crate::Result<JobRow>>,
{
    let written = write_as(ctx, row, false, op).await;
    if let Some(given_back) = &written {
        tell_given_back(ctx, given_back, Instant::now());
    }
    written
}

/// Tells the runtime's events of a give-back (`job_release`) that ended its job cancelled
/// because a user asked: a cancel, however the job was given back (at its turn, after
/// waiting too long for a slot, at a shutdown, by a reconcile). Until 8 Dec a give-back of a
/// job that never started told nobody, so whether such a cancel was counted depended on
/// whether a slot freed first. A give-back that ended the job cancelled because a parent
/// failed since its claim is no user's cancel, and is told to none, as a waiting child
/// cancelled by its parent is not.
pub(super) fn tell_given_back(ctx: &Ctx, written: &JobRow, began: Instant) {
    if written.state != JobState::Cancelled || !written.cancel_requested() {
        return;
    }
    info!(job_id = written.id, kind = %written.kind, queue = %written.queue, attempt = written.attempt, "job cancelled by user");
    tell(
        ctx.events.as_ref(),
        &attempt_ended(written, AttemptEnd::Cancelled, began),
    );
}

async fn write_as<F, Fut>(ctx: &Ctx, row: &JobRow, started: bool, op: F) -> Option<JobRow>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = crate::Result<JobRow>>,
{
    let written = write_outcome(row, op, &ctx.hard, &ctx.owned.retrying).await;
    // Written, fenced off or given up on: no longer this worker's to hold. One given up on is
    // still `running` here, and the reconcile puts it back (it looks at all the worker's jobs
    // next time); one fenced off is no longer this attempt's, and leaves no stray.
    let job = [(row.id, row.attempt)];
    match written {
        Ok(row) => {
            ctx.owned.remove_all(&job);
            Some(row)
        }
        Err(Unwritten::Fenced) => {
            ctx.owned.remove_all(&job);
            None
        }
        Err(Unwritten::GivenUp) => {
            ctx.owned.give_up(&job, started);
            None
        }
    }
}

/// Why an outcome was not written.
enum Unwritten {
    /// The job was rescued, cancelled or put back meanwhile.
    Fenced,
    /// Refused, or failing still after the retries.
    GivenUp,
}

async fn write_outcome<F, Fut>(
    row: &JobRow,
    op: F,
    hard: &CancellationToken,
    retrying: &Arc<Retrying>,
) -> Result<JobRow, Unwritten>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = crate::Result<JobRow>>,
{
    // Counted as failing from the first failure on, for the heartbeat to wait for.
    let mut failing = None;
    let mut tries = OutcomeTries::new(retrying);
    loop {
        tries.start();
        match op().await {
            Ok(written) => return Ok(written),
            Err(Error::Fenced { id, attempt }) => {
                debug!(
                    job_id = id,
                    attempt, "outcome fenced off: the job was rescued or cancelled meanwhile"
                );
                return Err(Unwritten::Fenced);
            }
            Err(e @ (Error::Unavailable(_) | Error::Database(_) | Error::Closed))
                if tries.left() && !hard.is_cancelled() =>
            {
                if failing.is_none() {
                    warn!(job_id = row.id, error = %e, "recording a job outcome failed; retrying");
                }
                failing.get_or_insert_with(|| retrying.enter());
                tries.pause(hard).await;
            }
            Err(e) => {
                warn!(job_id = row.id, error = %e, "could not record a job outcome; this worker's reconcile puts the job back to run again");
                return Err(Unwritten::GivenUp);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// News that comes in while the gate reads sends it to read again: the request whose
    /// news it was may have committed after the first read's snapshot.
    #[tokio::test]
    async fn the_start_gate_reads_again_when_news_came_during_its_read() {
        let count = AtomicU64::new(1);
        let reads = AtomicUsize::new(0);
        let asked = asked_since(
            || count.load(Ordering::SeqCst),
            0,
            || async {
                // The first read sees no request; its news arrives meanwhile.
                if reads.fetch_add(1, Ordering::SeqCst) == 0 {
                    count.fetch_add(1, Ordering::SeqCst);
                    Some(false)
                } else {
                    Some(true)
                }
            },
        )
        .await;
        assert!(asked, "the request heard of during the first read was read");
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    /// No news since the claim: no read. News, a read finding nothing, no more news: one read.
    /// News on every read: at most START_GATE_READS reads, then the job starts.
    #[tokio::test]
    async fn the_start_gate_reads_only_for_news_and_boundedly() {
        let reads = AtomicUsize::new(0);
        let read = || async {
            reads.fetch_add(1, Ordering::SeqCst);
            Some(false)
        };
        assert!(!asked_since(|| 3, 3, read).await);
        assert_eq!(reads.load(Ordering::SeqCst), 0);
        assert!(!asked_since(|| 4, 3, read).await);
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        let count = AtomicU64::new(10);
        let storm = asked_since(
            || count.fetch_add(1, Ordering::SeqCst),
            0,
            || async { Some(false) },
        )
        .await;
        assert!(!storm);
        assert_eq!(count.load(Ordering::SeqCst), 10 + START_GATE_READS as u64);
        assert!(
            !asked_since(|| 4, 3, || async { None }).await,
            "a failed read lets it start"
        );
    }
}
