//! Maintenance services: the periodic enqueuer, the rescuer (leases) and the retention
//! cleaner. Every service has one shape: a config with defaults, `run_once` returning counts
//! (so tests can assert them), and a loop that logs only when something changed. Each runs in
//! every worker process with no leader: the database makes concurrent runs safe.

mod periodic;
mod rescuer;
mod retention;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::runtime::{RuntimeConfig, WorkerIdentity};
use crate::store::Store;
use crate::worker::Workers;

pub use periodic::{PeriodicEnqueuer, PeriodicJob, Schedule};
pub use rescuer::{Rescuer, RescuerConfig, STUCK_MARGIN};
pub use retention::{RetentionCleaner, RetentionConfig};

/// Starts every maintenance service of a worker process on `tracker`, until `stop`.
pub(crate) fn spawn_all(
    tracker: &TaskTracker,
    store: &Arc<dyn Store>,
    workers: &Workers,
    config: &RuntimeConfig,
    identity: &WorkerIdentity,
    stop: CancellationToken,
) {
    let rescuer = Rescuer::new(
        store.clone(),
        RescuerConfig::for_workers(config.lease, workers),
    );
    tracker.spawn(rescuer.run(stop.clone()));
    let cleaner = RetentionCleaner::new(store.clone(), config.retention.clone());
    tracker.spawn(cleaner.run(stop.clone()));
    if !config.periodic.is_empty() {
        let enqueuer =
            PeriodicEnqueuer::new(store.clone(), config.periodic.clone(), identity.id.clone());
        tracker.spawn(enqueuer.run(stop));
    }
}
