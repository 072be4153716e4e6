//! Maintenance services: the periodic enqueuer, the rescuer (leases) and the retention
//! cleaner. Every service has one shape: a config with defaults, `run_once` returning counts
//! (so tests can assert them), and a loop that logs only when something changed. Each runs in
//! every worker process with no leader: the database makes concurrent runs safe. The runtime
//! starts them ([`crate::runtime`]); they know nothing of it.

mod periodic;
mod rescuer;
mod retention;

pub use periodic::{PeriodicEnqueuer, PeriodicJob, Schedule};
pub use rescuer::{EndingJobs, Rescuer, RescuerConfig, STUCK_MARGIN};
pub use retention::{RetentionCleaner, RetentionConfig, MAX_RETENTION_BATCH};
