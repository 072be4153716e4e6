//! The rescuer: running jobs whose worker stopped heartbeating within the lease, or that ran
//! far past their timeout, go back to retryable ("worker lost") or to discarded when their
//! attempts are used up, or to cancelled when a user had asked to cancel them. Fencing makes the lost worker's late writes change nothing.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::events::{JobEvents, NoEvents};
use crate::store::{JobRescueParams, RescueCounts, Store};
use crate::worker::Workers;

/// A job is stuck once it ran this much longer than its own timeout.
pub const STUCK_MARGIN: Duration = Duration::from_secs(30);

/// Passes take at most 1 / this of the time: a pass that took long waits this many times as
/// long before the next (see [`next_pass_in`]).
pub const PASS_COST_SHARE: u32 = 20;

/// How long to wait for the next pass after one that went through in `took`: the interval,
/// or longer when passes are slow, up to `most` (the lease: a lost worker's jobs are then
/// rescued within two leases). A pass reads every running job's entry in
/// `porter_jobs_running`; on Postgres, while a transaction held open elsewhere keeps the
/// entries of finished jobs there too, that is every job run since, and passes every interval
/// took the database's time from the jobs (measured: 1,500 jobs/s for ten minutes left a
/// million such entries). A pass that failed is followed after the interval, as before: its
/// time says nothing about the cost of a pass.
pub fn next_pass_in(interval: Duration, took: Duration, most: Duration) -> Duration {
    interval.max(took.saturating_mul(PASS_COST_SHARE).min(most))
}

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
    /// The worker this rescuer runs in, if any: the store then judges no worker lost while
    /// this one's own heartbeats are overdue or not yet steady again
    /// ([`JobRescueParams::by`]).
    pub worker: Option<String>,
    /// Asked at the start of each pass, in a worker: the jobs whose outcome it is still
    /// writing, which its own pass leaves ([`JobRescueParams::ending`]).
    pub ending: Option<EndingJobs>,
}

/// The jobs a worker is writing the outcome of, as its rescuer asks for them
/// ([`RescuerConfig::ending`]).
#[derive(Clone)]
pub struct EndingJobs(pub Arc<dyn Fn() -> Vec<(i64, i32)> + Send + Sync>);

impl std::fmt::Debug for EndingJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EndingJobs")
    }
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
            worker: None,
            ending: None,
        }
    }
}

impl RescuerConfig {
    /// Refuses settings under which a pass rescues nothing (a batch of 0 rows) or passes run
    /// back to back (an interval, or a lease, of 0: the wait between passes is at most the
    /// lease), as [`crate::maintenance::RetentionConfig::check`] does for retention.
    pub fn check(&self) -> Result<()> {
        if self.batch == 0 {
            return Err(Error::invalid(
                "rescuer batch",
                "0 rows: a pass would rescue nothing",
            ));
        }
        if self.interval.is_zero() {
            return Err(Error::invalid("rescuer interval", "must be more than 0"));
        }
        if self.lease.is_zero() {
            return Err(Error::invalid("rescuer lease", "must be more than 0"));
        }
        Ok(())
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

    /// One pass; returns what it rescued. A config [`RescuerConfig::check`] refuses is an
    /// error here, with nothing rescued.
    pub async fn run_once(&self) -> Result<RescueCounts> {
        self.config.check()?;
        // The store wakes this process's producers when jobs are due again.
        let rescued = self
            .store
            .job_rescue_jobs(JobRescueParams {
                ending: self
                    .config
                    .ending
                    .as_ref()
                    .map_or_else(Vec::new, |f| (f.0)()),
                by: self.config.worker.clone(),
                lease: self.config.lease,
                stuck_after: self.config.stuck_after.clone(),
                limit: self.config.batch,
            })
            .await?;
        for job in &rescued.jobs {
            crate::events::guarded("JobEvents::rescued", |_| (), || self.events.rescued(job));
        }
        Ok(rescued.counts())
    }

    /// Runs a pass every interval (less often while passes are slow: `next_pass_in`) until
    /// `stop`. A config [`RescuerConfig::check`] refuses rescues nothing (logged once).
    pub async fn run(self, stop: CancellationToken) {
        if let Err(e) = self.config.check() {
            warn!(error = %e, "the rescuer is off: its config is refused");
            stop.cancelled().await;
            return;
        }
        let mut wait = self.config.interval;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            let started = std::time::Instant::now();
            let pass = self.run_once().await;
            wait = match &pass {
                Ok(_) => next_pass_in(self.config.interval, started.elapsed(), self.config.lease),
                Err(_) => self.config.interval,
            };
            match pass {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_passes_come_less_often_but_within_the_lease() {
        let (interval, lease) = (Duration::from_secs(3), Duration::from_secs(15));
        let next = |took_ms| next_pass_in(interval, Duration::from_millis(took_ms), lease);
        assert_eq!(next(10), interval);
        assert_eq!(next(150), interval);
        assert_eq!(next(500), Duration::from_secs(10));
        assert_eq!(
            next(1_000),
            lease,
            "capped (review of 94c0e17: a 5 s pass waited 100 s)"
        );
    }
}
