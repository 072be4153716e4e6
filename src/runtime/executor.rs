//! Runs one claimed job: decode, run with its timeout, catch panics, then record the outcome
//! (fenced). Job args are never logged.

use std::any::Any;
use std::cell::RefCell;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Once};
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::Ctx;
use crate::error::Error;
use crate::job::JobRow;
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
    ShutDown,
    /// A user asked to cancel the job while it ran.
    CancelledByUser,
}

/// The error history entry of a run stopped by a user's cancel request.
const CANCELLED_BY_USER: &str = "cancelled by user";

thread_local! {
    /// Where the panic hook leaves the location and backtrace of a panic on this thread.
    static PANIC_TRACE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Chains a panic hook that keeps each panic's location and backtrace (when `RUST_BACKTRACE`
/// asks for one) for the executor, which catches the panic on the same thread.
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
            previous(info);
        }));
    });
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

pub(super) async fn execute(ctx: Arc<Ctx>, row: JobRow, permit: OwnedSemaphorePermit) {
    install_panic_hook();
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
        )
        .await;
        return;
    };
    let cancel = ctx.stop_jobs.child_token();
    let by_user = CancellationToken::new();
    let _registration = ctx.running.register(row.id, row.attempt, by_user.clone());
    let started = match worker.start(row.clone(), cancel.clone()) {
        Ok(started) => started,
        Err(e) => {
            record(&ctx, &row, Outcome::Done(Err(e)), permit).await;
            return;
        }
    };
    let timeout = started.timeout;
    let run = async move {
        match AssertUnwindSafe(started.work).catch_unwind().await {
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
            cancel.cancel();
            task.abort();
            Outcome::TimedOut(timeout)
        }
        _ = by_user.cancelled() => {
            cancel.cancel();
            task.abort();
            // The job counts as stopped (and its unique key is freed) only once its future is
            // gone: a job that never yields keeps it until the stuck rescue, or until this
            // worker shuts down (which does not wait for aborted jobs either).
            let finished = tokio::select! {
                joined = &mut task => joined.ok(),
                _ = ctx.stop_jobs.cancelled() => None,
            };
            match finished {
                // It succeeded before the abort took effect: it completes (River's rule).
                Some(done @ Outcome::Done(Ok(()))) => done,
                _ => Outcome::CancelledByUser,
            }
        }
        _ = ctx.stop_jobs.cancelled() => {
            task.abort();
            Outcome::ShutDown
        }
    };
    // A job that watched its cancel token and returned an error because of a cancel request or
    // the shutdown was stopped by us, not failed by itself: record it as that. One that
    // succeeded before it noticed the request completes (River's rule).
    let outcome = match outcome {
        Outcome::Done(Err(_)) if by_user.is_cancelled() => Outcome::CancelledByUser,
        Outcome::Done(Err(_)) if ctx.stop_jobs.is_cancelled() => Outcome::ShutDown,
        other => other,
    };
    record(&ctx, &row, outcome, permit).await;
}

/// Records the outcome; the job's slot is released once it is written (by the completer, for
/// a completion).
async fn record(ctx: &Ctx, row: &JobRow, outcome: Outcome, slot: OwnedSemaphorePermit) {
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
            .map_or(Duration::from_secs(1), |w| w.next_retry_for(row))
    };
    let params = match outcome {
        Outcome::Done(Ok(())) => {
            ctx.completer.complete(fence, slot);
            return;
        }
        Outcome::Done(Err(JobError::Snooze(delay))) => {
            write(ctx, row, || {
                ctx.store.job_snooze(JobSnoozeParams {
                    fence: fence.clone(),
                    delay,
                })
            })
            .await;
            return;
        }
        Outcome::Done(Err(JobError::Cancel(reason))) => {
            write(ctx, row, || {
                ctx.store.job_cancel_running(JobCancelRunningParams {
                    fence: fence.clone(),
                    reason: reason.clone(),
                })
            })
            .await;
            return;
        }
        Outcome::CancelledByUser => {
            info!(job_id = row.id, kind = %row.kind, queue = %row.queue, attempt = row.attempt, "job cancelled by user");
            write(ctx, row, || {
                ctx.store.job_cancel_running(JobCancelRunningParams {
                    fence: fence.clone(),
                    reason: CANCELLED_BY_USER.to_string(),
                })
            })
            .await;
            return;
        }
        Outcome::Done(Err(JobError::Discard(reason))) => {
            ctx.errors.handle_error(row, &reason);
            fail(reason, None, Duration::ZERO, true)
        }
        Outcome::Done(Err(JobError::Failed { message, trace })) => {
            ctx.errors.handle_error(row, &message);
            fail(message, trace, retry_in(), false)
        }
        Outcome::Panicked { message, trace } => {
            ctx.errors.handle_panic(row, &message, trace.as_deref());
            fail(format!("panic: {message}"), trace, retry_in(), false)
        }
        Outcome::TimedOut(t) => {
            let message = format!("job timed out after {}", humanize(t));
            ctx.errors.handle_error(row, &message);
            fail(message, None, retry_in(), false)
        }
        Outcome::ShutDown => {
            // Stopped by us, not failed by itself: the job goes back without using up an
            // attempt, so a deploy never discards a job on its last one (issue 11.1).
            write(ctx, row, || {
                ctx.store.job_release(JobReleaseParams {
                    fence: fence.clone(),
                    reason: SHUT_DOWN.to_string(),
                })
            })
            .await;
            return;
        }
    };
    write(ctx, row, || ctx.store.job_fail(params.clone())).await;
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
/// no longer counts).
async fn write<F, Fut>(ctx: &Ctx, row: &JobRow, op: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = crate::Result<JobRow>>,
{
    write_outcome(row, op, &ctx.hard).await;
    // Written, fenced off or given up on: no longer this worker's to hold. One given up on is
    // still `running` here, and the reconcile puts it back.
    ctx.owned.remove_all(&[(row.id, row.attempt)]);
}

async fn write_outcome<F, Fut>(row: &JobRow, op: F, hard: &CancellationToken)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = crate::Result<JobRow>>,
{
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=40 {
        match op().await {
            Ok(_) => return,
            Err(Error::Fenced { id, attempt }) => {
                debug!(
                    job_id = id,
                    attempt, "outcome fenced off: the job was rescued or cancelled meanwhile"
                );
                return;
            }
            Err(e @ (Error::Unavailable(_) | Error::Database(_) | Error::Closed))
                if attempt < 40 && !hard.is_cancelled() =>
            {
                if attempt == 1 {
                    warn!(job_id = row.id, error = %e, "recording a job outcome failed; retrying");
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = hard.cancelled() => {}
                }
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                warn!(job_id = row.id, error = %e, "could not record a job outcome; this worker's reconcile puts the job back to run again");
                return;
            }
        }
    }
}
