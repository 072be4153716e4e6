//! The rescuer: running jobs whose worker stopped heartbeating within the lease, or that ran
//! far past their timeout, go back to retryable ("worker lost") or to discarded when their
//! attempts are used up, or to cancelled when a user had asked to cancel them. Fencing makes the lost worker's late writes change nothing.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::error::Result;
use crate::events::{JobEvents, NoEvents};
use crate::store::{JobRescueParams, RescueCounts, Store};
use crate::worker::Workers;

/// A job is stuck once it ran this much longer than its own timeout.
pub const STUCK_MARGIN: Duration = Duration::from_secs(30);

/// Rescuer settings.
#[derive(Debug, Clone)]
pub struct RescuerConfig {
    /// A worker silent for this long is lost (default 15 s).
    pub lease: Duration,
    /// How often to look (default a fifth of the lease).
    pub interval: Duration,
    /// Per kind, how long a run may last before it counts as stuck (timeout + margin).
    pub stuck_after: Vec<(String, Duration)>,
    /// Most rows per pass.
    pub batch: u32,
}

impl RescuerConfig {
    /// Settings for a lease, with stuck limits from each kind's longest timeout.
    pub fn for_workers(lease: Duration, workers: &Workers) -> Self {
        let stuck_after = workers
            .kinds()
            .into_iter()
            .filter_map(|k| {
                let max = workers.get(&k)?.max_timeout();
                Some((k, max.saturating_add(STUCK_MARGIN)))
            })
            .collect();
        RescuerConfig {
            lease,
            interval: lease / 5,
            stuck_after,
            batch: 1000,
        }
    }
}

/// The rescuer service.
pub struct Rescuer {
    store: Arc<Store>,
    config: RescuerConfig,
    events: Arc<dyn JobEvents>,
}

impl Rescuer {
    /// A rescuer over a store.
    pub fn new(store: Arc<Store>, config: RescuerConfig) -> Self {
        Rescuer {
            store,
            config,
            events: Arc::new(NoEvents),
        }
    }

    /// Tells `events` about each job a pass moves (metrics).
    pub fn with_events(mut self, events: Arc<dyn JobEvents>) -> Self {
        self.events = events;
        self
    }

    /// One pass; returns what it rescued.
    pub async fn run_once(&self) -> Result<RescueCounts> {
        // The store wakes this process's producers when jobs are due again.
        let rescued = self
            .store
            .job_rescue_jobs(JobRescueParams {
                lease: self.config.lease,
                stuck_after: self.config.stuck_after.clone(),
                limit: self.config.batch,
            })
            .await?;
        for job in &rescued.jobs {
            self.events.rescued(job);
        }
        Ok(rescued.counts())
    }

    /// Runs a pass every interval until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.config.interval) => {}
            }
            match self.run_once().await {
                Ok(c) if c.retried + c.discarded + c.cancelled > 0 => {
                    info!(
                        retried = c.retried,
                        discarded = c.discarded,
                        cancelled = c.cancelled,
                        "rescued jobs of lost workers"
                    )
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "rescuer pass failed"),
            }
        }
    }
}
