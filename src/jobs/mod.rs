//! Built-in jobs of the queue core: `heartbeat` (periodic) and the diagnostics `noop`,
//! `sleep` and `fail`. The tablo app's `orphan_file_cleanup` lives with the app, in
//! `app::orphan_file_cleanup`; the `porter` binary registers both in `app::builtin`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::info;

use crate::job::JobArgs;
use crate::worker::{Job, JobError, Worker};

/// Logs "worker heartbeat" with its job id and attempt: proof that the loop turns.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Heartbeat {}

impl JobArgs for Heartbeat {
    const KIND: &'static str = "heartbeat";
}

/// Runs [`Heartbeat`].
#[derive(Debug, Clone, Copy, Default)]
pub struct HeartbeatWorker;

#[async_trait::async_trait]
impl Worker<Heartbeat> for HeartbeatWorker {
    async fn work(&self, job: Job<Heartbeat>) -> Result<(), JobError> {
        info!(
            job_id = job.id(),
            attempt = job.attempt(),
            "worker heartbeat"
        );
        Ok(())
    }
}

/// Does nothing (benchmarks, smoke tests).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Noop {}

impl JobArgs for Noop {
    const KIND: &'static str = "noop";
}

/// Runs [`Noop`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopWorker;

#[async_trait::async_trait]
impl Worker<Noop> for NoopWorker {
    async fn work(&self, _job: Job<Noop>) -> Result<(), JobError> {
        Ok(())
    }
}

/// Sleeps `ms` milliseconds (cancellable), for shutdown and soak tests.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Sleep {
    /// How long to sleep.
    pub ms: u64,
}

impl JobArgs for Sleep {
    const KIND: &'static str = "sleep";
}

/// Runs [`Sleep`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SleepWorker;

#[async_trait::async_trait]
impl Worker<Sleep> for SleepWorker {
    async fn work(&self, job: Job<Sleep>) -> Result<(), JobError> {
        // One event at each end of every execution, at debug (RUST_LOG=porter::jobs=debug):
        // the fault suite reads them back to check, after the fact, that queue limits held
        // (how many ran at once, per key; how many started per window). Never the args.
        let event = |what: &'static str| {
            tracing::debug!(
                job_id = job.id(),
                attempt = job.attempt(),
                queue = %job.row.queue,
                concurrency_key = job.row.concurrency_key.as_deref().unwrap_or(""),
                attempted_at_us = job.row.attempted_at.map_or(0, |t| t.timestamp_micros()),
                at_us = chrono::Utc::now().timestamp_micros(),
                "{what}"
            );
        };
        event("sleep started");
        let out = tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(job.args.ms)) => Ok(()),
            _ = job.cancel.cancelled() => Err(JobError::msg("sleep cancelled")),
        };
        event("sleep ended");
        out
    }

    fn timeout(&self, job: &Job<Sleep>) -> Duration {
        // A sleep longer than the default timeout is asked for on purpose.
        crate::worker::DEFAULT_JOB_TIMEOUT
            .max(Duration::from_millis(job.args.ms.saturating_add(5_000)))
    }

    fn max_timeout(&self) -> Duration {
        // Sleeps are as long as asked: a day covers every test and soak.
        Duration::from_secs(24 * 3600)
    }
}

/// Fails with `message`, or panics with it when `panic` is set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Fail {
    /// The error message.
    #[serde(default = "default_fail_message")]
    pub message: String,
    /// Panic instead of returning an error.
    #[serde(default)]
    pub panic: bool,
}

fn default_fail_message() -> String {
    "failed on purpose".to_string()
}

impl JobArgs for Fail {
    const KIND: &'static str = "fail";
}

/// Runs [`Fail`].
#[derive(Debug, Clone, Copy, Default)]
pub struct FailWorker;

#[async_trait::async_trait]
impl Worker<Fail> for FailWorker {
    async fn work(&self, job: Job<Fail>) -> Result<(), JobError> {
        if job.args.panic {
            panic!("{}", job.args.message);
        }
        Err(JobError::msg(&job.args.message))
    }
}
