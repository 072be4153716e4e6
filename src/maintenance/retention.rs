//! The retention cleaner: deletes finished jobs past their retention in bounded batches, so a
//! million finished rows never hold the write lock for long.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::error::Result;
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

    /// Deletes batches until one comes back short; returns how many rows went.
    pub async fn run_once(&self) -> Result<u64> {
        let mut total = 0;
        loop {
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

    /// Cleans on start and then every interval until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            match self.run_once().await {
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
