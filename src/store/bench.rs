//! What `porter bench` needs from the database beyond the [`Store`](super::Store) seam: the
//! database's own limit measured with hand-written SQL (the baseline porter's figures are
//! divided by), a cheap count of a queue's unfinished jobs (to tell when a drain is over) and
//! the plan of the claim query. The SQL lives in each backend's `bench.rs`; this module holds
//! what both share, and `porter bench` picks the backend.

use serde::{Deserialize, Serialize};

/// Rows per transaction in the hand-written drain: claim this many, complete them, commit.
pub const RAW_BATCH: usize = 100;
/// Queue the hand-written baseline uses (porter's own phases use other queues).
pub const RAW_QUEUE: &str = "bench_raw";
/// Queue the hand-written single inserts go to (deleted afterwards).
pub const RAW_SINGLE_QUEUE: &str = "bench_raw_single";

/// The database's own limit, measured with hand-written SQL in the same run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RawBaseline {
    /// Jobs inserted per second, all in one transaction.
    pub batch_insert_jobs_per_sec: f64,
    /// Jobs inserted per second, one transaction per job.
    pub single_insert_jobs_per_sec: f64,
    /// Jobs claimed and completed per second, [`RAW_BATCH`] per transaction.
    pub drain_jobs_per_sec: f64,
}

/// Jobs per second, guarding against a zero duration.
pub(crate) fn rate(jobs: usize, elapsed: std::time::Duration) -> f64 {
    jobs as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// A hand-written dependency shape on the least a job queue with dependencies can be (the
/// minimal table with the job each job waits for, `bench_chains_create.sql`): `porter bench
/// --workflow`'s baseline, measured in the same run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ChainsBaseline {
    /// Inserting the jobs, in one transaction.
    pub insert_secs: f64,
    /// Draining them: claim [`RAW_BATCH`], complete them and make the jobs that waited for
    /// them claimable, commit.
    pub drain_secs: f64,
}

impl ChainsBaseline {
    /// Both.
    pub fn total_secs(&self) -> f64 {
        self.insert_secs + self.drain_secs
    }
}
