//! `porter bench --sustain DURATION`: steady enqueue and drain for a while, the way queues on
//! a database fail in production, figures per interval. With `--hold`, a transaction stays
//! open elsewhere in the database the whole time: on Postgres it holds vacuum back (dead rows
//! pile up), on SQLite it is a long reader the WAL cannot be checkpointed past.
//!
//! Each interval reports the jobs started and completed, enqueue-to-start latency, the backlog
//! (jobs available or running) and what the database is holding on to (the WAL's size on
//! SQLite, dead row versions of the jobs table on Postgres). A queue that keeps up completes
//! what was inserted in every interval and its backlog stays flat.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{percentile, unix_micros, BenchProbe};
use crate::client::insert_params;
use crate::error::{Error, Result};
use crate::job::{InsertOpts, JobArgs};
use crate::runtime::{Runtime, RuntimeConfig, Shutdown};
use crate::store::Backend;
use crate::worker::{Job, JobError, Worker, Workers};

/// The queue the sustained run uses; its jobs are deleted afterwards.
const SUSTAIN_QUEUE: &str = "bench_sustain";
/// How often the inserter tops the queue up to the rate.
const INSERT_TICK: Duration = Duration::from_millis(10);

/// What to run.
#[derive(Debug, Clone)]
pub struct SustainOptions {
    /// How long to enqueue and drain.
    pub duration: Duration,
    /// Jobs enqueued per second, evenly (in batches every 10 ms).
    pub rate: f64,
    /// Slots of the draining worker.
    pub concurrency: usize,
    /// Keep a transaction open elsewhere in the database the whole time.
    pub hold: bool,
    /// Length of one reported interval.
    pub interval: Duration,
}

/// One interval's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SustainInterval {
    /// Seconds since the start, at the interval's end.
    pub at_s: f64,
    /// Jobs inserted in the interval.
    pub inserted: u64,
    /// Jobs that started in the interval.
    pub started: u64,
    /// Jobs started per second in the interval.
    pub started_per_sec: f64,
    /// Enqueue-to-start latency of the jobs started in the interval, median (ms).
    pub latency_ms_p50: f64,
    /// The same, 99th percentile (ms).
    pub latency_ms_p99: f64,
    /// Jobs available or running at the interval's end.
    pub backlog: i64,
    /// SQLite: the write-ahead log's size at the interval's end (bytes).
    pub wal_bytes: Option<u64>,
    /// Postgres: dead row versions in porter_jobs at the interval's end.
    pub dead_rows: Option<i64>,
}

/// The figures of one sustained run (`porter bench --sustain ... --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SustainReport {
    /// `sqlite` or `postgres`.
    pub backend: Backend,
    /// Seconds the run enqueued for.
    pub duration_s: f64,
    /// Jobs enqueued per second, as asked.
    pub rate: f64,
    /// Slots of the draining worker.
    pub concurrency: usize,
    /// Whether a transaction was held open elsewhere the whole time.
    pub held: bool,
    /// Jobs inserted in all.
    pub inserted: u64,
    /// Jobs started in all.
    pub started: u64,
    /// Per interval.
    pub intervals: Vec<SustainInterval>,
    /// Jobs started per second in the last interval over the first: below 1 the queue slowed
    /// down as the run went on.
    pub last_vs_first: f64,
}

impl std::fmt::Display for SustainReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "porter bench --sustain on {} ({:.0} s at {:.0} jobs/s, concurrency {}{})",
            self.backend,
            self.duration_s,
            self.rate,
            self.concurrency,
            if self.held {
                ", a transaction held open"
            } else {
                ""
            }
        )?;
        writeln!(
            f,
            "{:>8}{:>10}{:>10}{:>12}{:>11}{:>11}{:>10} {:>16}",
            "at", "inserted", "started", "started/s", "p50", "p99", "backlog", "held on to"
        )?;
        for i in &self.intervals {
            let held = match (i.wal_bytes, i.dead_rows) {
                (Some(b), _) => format!("{:.1} MiB WAL", b as f64 / 1048576.0),
                (_, Some(d)) => format!("{d} dead"),
                _ => "-".into(),
            };
            writeln!(
                f,
                "{:>7.0}s{:>10}{:>10}{:>12.0}{:>8.2} ms{:>8.2} ms{:>10} {:>16}",
                i.at_s,
                i.inserted,
                i.started,
                i.started_per_sec,
                i.latency_ms_p50,
                i.latency_ms_p99,
                i.backlog,
                held
            )?;
        }
        writeln!(
            f,
            "inserted {}, started {}; last interval vs first: {:.2}",
            self.inserted, self.started, self.last_vs_first
        )
    }
}

/// A sustained-run job: carries the wall-clock time (Unix microseconds) of its insert.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tick {
    sent_at_us: i64,
}

impl JobArgs for Tick {
    const KIND: &'static str = "bench_tick";
}

/// Records each start's latency (ms) until the interval is collected.
struct TickWorker {
    seen: Arc<Mutex<Vec<f64>>>,
}

#[async_trait::async_trait]
impl Worker<Tick> for TickWorker {
    async fn work(&self, job: Job<Tick>) -> std::result::Result<(), JobError> {
        let latency_ms = (unix_micros() - job.args.sent_at_us) as f64 / 1000.0;
        self.seen.lock().unwrap().push(latency_ms);
        Ok(())
    }
}

/// Runs the sustained load on a database without jobs; its jobs are deleted afterwards.
pub async fn sustain(database_url: &str, opts: SustainOptions) -> Result<SustainReport> {
    if opts.rate <= 0.0
        || opts.concurrency == 0
        || opts.interval.is_zero()
        || opts.duration.is_zero()
    {
        return Err(Error::invalid(
            "bench",
            "--sustain, --rate, --concurrency and the interval must be above 0",
        ));
    }
    let store = super::open_without_jobs(database_url).await?;
    let mut probe = BenchProbe::open(database_url).await?;
    let holder = match opts.hold {
        true => Some(probe.hold_snapshot().await?),
        false => None,
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Workers::new();
    workers.add(TickWorker { seen: seen.clone() })?;
    let config = RuntimeConfig {
        queues: vec![(SUSTAIN_QUEUE.to_string(), opts.concurrency)],
        ..RuntimeConfig::default()
    };
    let shutdown = Shutdown::new();
    let running = tokio::spawn(Runtime::new(store.clone(), workers, config).run(shutdown.clone()));

    let measured = async {
        let client = crate::Client::new(store.clone());
        let started = Instant::now();
        let (mut inserted, mut inserted_before) = (0u64, 0u64);
        let mut next_report = opts.interval.min(opts.duration);
        let mut reported_at = Duration::ZERO;
        let mut intervals = Vec::new();
        loop {
            let elapsed = started.elapsed();
            let due = (opts.rate * elapsed.min(opts.duration).as_secs_f64()) as u64;
            if due > inserted {
                let tick = insert_params(
                    &Tick {
                        sent_at_us: unix_micros(),
                    },
                    Some(InsertOpts {
                        queue: Some(SUSTAIN_QUEUE.into()),
                        ..InsertOpts::default()
                    }),
                )?;
                let n = (due - inserted) as usize;
                client.insert_many_params(vec![tick; n]).await?;
                inserted = due;
            }
            if elapsed >= next_report {
                let length = (elapsed - reported_at).as_secs_f64().max(1e-9);
                let latencies = std::mem::take(&mut *seen.lock().unwrap());
                let backlog = probe.unfinished(SUSTAIN_QUEUE).await?;
                let (wal_bytes, dead_rows) = probe.held_on_to().await?;
                intervals.push(SustainInterval {
                    at_s: elapsed.as_secs_f64(),
                    inserted: inserted - inserted_before,
                    started: latencies.len() as u64,
                    started_per_sec: latencies.len() as f64 / length,
                    latency_ms_p50: percentile(&latencies, 0.50),
                    latency_ms_p99: percentile(&latencies, 0.99),
                    backlog,
                    wal_bytes,
                    dead_rows,
                });
                inserted_before = inserted;
                reported_at = elapsed;
                if elapsed >= opts.duration {
                    break;
                }
                next_report = (next_report + opts.interval).min(opts.duration);
            }
            tokio::time::sleep(INSERT_TICK).await;
        }
        Ok::<_, Error>((inserted, intervals))
    }
    .await;
    shutdown.soft.cancel();
    let ran = running.await.map_err(|e| Error::Database(e.to_string()));
    drop(holder);
    probe.delete_queue(SUSTAIN_QUEUE).await?;
    ran??;
    let (inserted, intervals) = measured?;
    let rate_of = |i: Option<&SustainInterval>| i.map_or(0.0, |i| i.started_per_sec);
    let (first, last) = (rate_of(intervals.first()), rate_of(intervals.last()));
    Ok(SustainReport {
        backend: store.backend(),
        duration_s: opts.duration.as_secs_f64(),
        rate: opts.rate,
        concurrency: opts.concurrency,
        held: opts.hold,
        inserted,
        started: intervals.iter().map(|i| i.started).sum(),
        last_vs_first: if first > 0.0 { last / first } else { 0.0 },
        intervals,
    })
}
