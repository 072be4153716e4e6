//! `orphan_file_cleanup`: deletes the stored objects of files whose tablo is gone, then their
//! rows. One run is one [`cleanup_orphans`](crate::app::files::cleanup_orphans) pass; it fails (and
//! so retries with backoff) when any file could not be cleaned up, with the counts in its
//! error. It runs hourly from the periodic schedule, and once per deleted tablo (args
//! `{"tablo_id": ...}`) from the web's tablo delete.

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;

pub use crate::app::args::OrphanFileCleanup;
use crate::app::files::{cleanup_orphans_until, CleanupConfig};
use crate::app::store::TabloStore;
use crate::worker::{Job, JobError, Worker};

/// How long one run may take: a pass over a large backlog is long, and it is safe to stop
/// anywhere (the next run picks up where this one stopped).
pub const TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Runs `orphan_file_cleanup` jobs against one database and one object store.
#[derive(Clone)]
pub struct OrphanFileCleanupWorker {
    /// The database holding `tablo_files`.
    pub store: Arc<dyn TabloStore>,
    /// Where the files' objects are.
    pub objects: Arc<dyn ObjectStore>,
    /// Prefix, page size and concurrency; `tablo_id` comes from each job's args instead.
    pub config: CleanupConfig,
    /// The longest delay before a failed run's next attempt: the periodic schedule's
    /// interval. One periodic cleanup waits at a time ([`crate::app::builtin::builtin_periodic`]
    /// gives them one unique key), and its retries stand in for the slots that pass, so the
    /// default backoff (days, from the 9th attempt on) would leave the orphans for days.
    pub retry_at_most: Duration,
}

impl std::fmt::Debug for OrphanFileCleanupWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrphanFileCleanupWorker")
            .field("backend", &self.store.backend())
            .field("objects", &self.objects.to_string())
            .field("config", &self.config)
            .field("retry_at_most", &self.retry_at_most)
            .finish()
    }
}

#[async_trait::async_trait]
impl Worker<OrphanFileCleanup> for OrphanFileCleanupWorker {
    async fn work(&self, job: Job<OrphanFileCleanup>) -> Result<(), JobError> {
        let config = CleanupConfig {
            tablo_id: job.args.tablo_id,
            ..self.config.clone()
        };
        let counts = cleanup_orphans_until(
            self.store.as_ref(),
            self.objects.as_ref(),
            &config,
            &job.cancel,
        )
        .await
        .map_err(|e| JobError::msg(format!("orphan cleanup: {e}")))?;
        tracing::info!(
            job_id = job.id(),
            attempt = job.attempt(),
            orphans_seen = counts.orphans_seen,
            objects_deleted = counts.objects_deleted,
            rows_deleted = counts.rows_deleted,
            failures = counts.failures,
            "orphan file cleanup"
        );
        if counts.failures > 0 {
            return Err(JobError::msg(format!(
                "orphan cleanup: {} failures (seen {}, objects deleted {}, rows deleted {})",
                counts.failures, counts.orphans_seen, counts.objects_deleted, counts.rows_deleted
            )));
        }
        if job.cancel.is_cancelled() {
            return Err(JobError::msg(format!(
                "orphan cleanup: stopped before the end ({counts})"
            )));
        }
        Ok(())
    }

    fn timeout(&self, _job: &Job<OrphanFileCleanup>) -> Duration {
        TIMEOUT
    }

    fn next_retry(&self, job: &Job<OrphanFileCleanup>) -> Duration {
        crate::job::default_backoff(job.attempt()).min(self.retry_at_most)
    }

    fn max_timeout(&self) -> Duration {
        TIMEOUT
    }
}
