//! What a runtime tells an observer about the jobs it runs: the hook for metrics. Nothing here
//! knows of Prometheus; `porter::http::Metrics` is one observer.

use std::time::Duration;

use crate::store::RescuedJob;

/// How one attempt ended, as this runtime recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptEnd {
    /// It succeeded and its completion was written.
    Completed,
    /// It failed (error, panic, timeout) and will be tried again.
    Retryable,
    /// It failed for the last time, or discarded itself.
    Discarded,
    /// It was cancelled: by itself, or by a user's request while it ran.
    Cancelled,
    /// It snoozed: back to `scheduled` without using an attempt.
    Snoozed,
    /// Its worker shut down: back to `available` without using an attempt.
    Released,
}

impl AttemptEnd {
    /// The name used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptEnd::Completed => "completed",
            AttemptEnd::Retryable => "retryable",
            AttemptEnd::Discarded => "discarded",
            AttemptEnd::Cancelled => "cancelled",
            AttemptEnd::Snoozed => "snoozed",
            AttemptEnd::Released => "released",
        }
    }
}

/// One attempt that ended: which job, how, and how long its work ran. Never its args.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptEnded {
    /// The job.
    pub job_id: i64,
    /// Its queue.
    pub queue: String,
    /// Its kind.
    pub kind: String,
    /// The attempt that ended.
    pub attempt: i32,
    /// How it ended.
    pub end: AttemptEnd,
    /// From the start of its work to its outcome.
    pub ran_for: Duration,
}

/// Told about every attempt a runtime ended (once its outcome is written; an outcome fenced
/// off because the job was rescued or cancelled meanwhile is not told) and every job the
/// runtime's rescuer moved. Calls come from the runtime's tasks: keep them quick.
pub trait JobEvents: Send + Sync + 'static {
    /// A runtime starts serving these queues with these kinds: an observer that counts may
    /// create its series for each pair now, at 0, so that the first event of each is seen as
    /// an increase.
    fn started(&self, queues: &[String], kinds: &[String]) {
        let _ = (queues, kinds);
    }
    /// An attempt ended.
    fn attempt_ended(&self, ended: &AttemptEnded);
    /// The rescuer moved a job of a lost worker, or a stuck job.
    fn rescued(&self, job: &RescuedJob);
}

/// Tells nobody: the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvents;

impl JobEvents for NoEvents {
    fn attempt_ended(&self, _: &AttemptEnded) {}
    fn rescued(&self, _: &RescuedJob) {}
}

/// Runs `f`, a call into the application's code outside a job's own run (a worker's `timeout`
/// or `next_retry`, an error handler, an events observer). A panic there is logged and
/// `instead` (given its message) is used: unwinding through the executor or the completer
/// would skip the write of a job's outcome, leave the job `running` with its permits given
/// back, and, in the completer, end the task that writes every later completion.
pub(crate) fn guarded<T>(
    what: &str,
    instead: impl FnOnce(String) -> T,
    f: impl FnOnce() -> T,
) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(value) => value,
        Err(payload) => {
            let message = panic_message(&*payload);
            tracing::error!(callback = what, panic = %message, "a callback panicked; going on without it");
            instead(message)
        }
    }
}

/// A panic's message, from its payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}
