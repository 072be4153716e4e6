//! What `porter bench` needs from the database beyond the [`Store`](super::Store) seam: the
//! database's own limit measured with hand-written SQL (the baseline porter's figures are
//! divided by), a cheap count of a queue's unfinished jobs (to tell when a drain is over) and
//! the plan of the claim query. The SQL lives in each backend's `bench.rs`; this module only
//! picks the backend.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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

/// A connection of its own beside the store, for the benchmark's measurements.
pub enum BenchProbe {
    /// On SQLite.
    Sqlite(super::sqlite::bench::Probe),
    /// On PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres(Box<super::postgres::bench::Probe>),
}

impl BenchProbe {
    /// Connects to the database a URL names (already migrated by the store).
    pub async fn open(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            return Ok(BenchProbe::Sqlite(
                super::sqlite::bench::Probe::open(url).await?,
            ));
        }
        #[cfg(feature = "postgres")]
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(BenchProbe::Postgres(Box::new(
                super::postgres::bench::Probe::open(url).await?,
            )));
        }
        Err(Error::invalid(
            "database url",
            format!(
                "{} is not a database porter bench knows",
                super::redact_url(url)
            ),
        ))
    }

    /// How many jobs of `queue` are available or running (an index range, not a table scan).
    pub async fn unfinished(&mut self, queue: &str) -> Result<i64> {
        match self {
            BenchProbe::Sqlite(p) => p.unfinished(queue).await,
            #[cfg(feature = "postgres")]
            BenchProbe::Postgres(p) => p.unfinished(queue).await,
        }
    }

    /// Whether any job of `queue` is available or running (one index probe).
    pub async fn any_unfinished(&mut self, queue: &str) -> Result<bool> {
        match self {
            BenchProbe::Sqlite(p) => p.any_unfinished(queue).await,
            #[cfg(feature = "postgres")]
            BenchProbe::Postgres(p) => p.any_unfinished(queue).await,
        }
    }

    /// The plan of the claim query (porter's own `job_claim.sql`) for `queue`, as text.
    pub async fn explain_claim(&mut self, queue: &str) -> Result<String> {
        match self {
            BenchProbe::Sqlite(p) => p.explain_claim(queue).await,
            #[cfg(feature = "postgres")]
            BenchProbe::Postgres(p) => p.explain_claim(queue).await,
        }
    }

    /// Measures the database's own limit with hand-written SQL on `jobs` jobs of
    /// [`RAW_QUEUE`]: one batch insert, single inserts, then the drain.
    pub async fn raw_drain_baseline(
        &mut self,
        jobs: usize,
        single_jobs: usize,
    ) -> Result<RawBaseline> {
        match self {
            BenchProbe::Sqlite(p) => p.raw_drain_baseline(jobs, single_jobs).await,
            #[cfg(feature = "postgres")]
            BenchProbe::Postgres(p) => p.raw_drain_baseline(jobs, single_jobs).await,
        }
    }
}
