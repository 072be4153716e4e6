//! The retention cleaner: deletes finished jobs past their retention in bounded batches, so a
//! million finished rows never hold the write lock for long.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::store::{JobDeleteFinalizedParams, Store};

/// Retention settings (River's defaults).
#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// Completed jobs are kept this long (default 24 h).
    pub completed: Duration,
    /// Cancelled jobs are kept this long (default 24 h).
    pub cancelled: Duration,
    /// Discarded jobs are kept this long (default 7 days).
    pub discarded: Duration,
    /// How often to clean (default 1 min).
    pub interval: Duration,
    /// Rows per delete (default 1000).
    pub batch: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            completed: Duration::from_secs(24 * 3600),
            cancelled: Duration::from_secs(24 * 3600),
            discarded: Duration::from_secs(7 * 24 * 3600),
            interval: Duration::from_secs(60),
            batch: 1000,
        }
    }
}

/// Most rows one delete of the retention may take: on SQLite a batch is one statement in the
/// one writer, which every other write waits behind.
pub const MAX_RETENTION_BATCH: u32 = 10_000;

impl RetentionConfig {
    /// Refuses a batch of 0 rows (a pass would delete nothing and never end: until 6 Dec it
    /// spun a core for good, and every shutdown waited on it) or over
    /// [`MAX_RETENTION_BATCH`], and an interval of 0 (back-to-back passes).
    pub fn check(&self) -> Result<()> {
        if !(1..=MAX_RETENTION_BATCH).contains(&self.batch) {
            return Err(Error::invalid(
                "retention batch",
                format!(
                    "{} rows: a delete takes 1 to {MAX_RETENTION_BATCH}",
                    self.batch
                ),
            ));
        }
        if self.interval.is_zero() {
            return Err(Error::invalid("retention interval", "must be more than 0"));
        }
        Ok(())
    }
}

/// The retention service.
pub struct RetentionCleaner {
    store: Arc<Store>,
    config: RetentionConfig,
}

impl RetentionCleaner {
    /// A cleaner over a store.
    pub fn new(store: Arc<Store>, config: RetentionConfig) -> Self {
        RetentionCleaner { store, config }
    }

    /// Deletes batches until one comes back short; returns how many rows went. A config that
    /// [`RetentionConfig::check`] refuses is an error here, with nothing deleted.
    pub async fn run_once(&self) -> Result<u64> {
        self.run_once_until(&CancellationToken::new()).await
    }

    /// [`RetentionCleaner::run_once`] that stops between batches once `stop` is cancelled
    /// (what is left waits for the next pass). Until 6 Dec a pass ran to its end whatever
    /// happened: a backlog of a million finished jobs (after downtime, or a first start on a
    /// large database) held a worker's shutdown until its timeout made it exit 1, blaming the
    /// database.
    pub async fn run_once_until(&self, stop: &CancellationToken) -> Result<u64> {
        self.config.check()?;
        let mut total = 0;
        loop {
            if stop.is_cancelled() {
                return Ok(total);
            }
            let n = self
                .store
                .job_delete_finalized(JobDeleteFinalizedParams {
                    completed: self.config.completed,
                    cancelled: self.config.cancelled,
                    discarded: self.config.discarded,
                    limit: self.config.batch,
                })
                .await?;
            total += n;
            if n < u64::from(self.config.batch) {
                return Ok(total);
            }
            // Let other writers in between batches.
            tokio::task::yield_now().await;
        }
    }

    /// Cleans on start and then every interval until `stop` (a pass under way stops between
    /// batches). A config [`RetentionConfig::check`] refuses cleans nothing (logged once).
    pub async fn run(self, stop: CancellationToken) {
        if let Err(e) = self.config.check() {
            warn!(error = %e, "retention is off: its config is refused");
            stop.cancelled().await;
            return;
        }
        loop {
            match self.run_once_until(&stop).await {
                Ok(n) if n > 0 => info!(deleted = n, "deleted finished jobs past their retention"),
                Ok(_) => {}
                Err(e) => warn!(error = %e, "retention pass failed"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.config.interval) => {}
            }
        }
    }
}
