//! `porter bench`: how fast porter moves jobs on the database it is given, next to what that
//! database does with hand-written SQL, measured in the same run on the same machine.
//!
//! The run needs a database without jobs (it refuses any other) and goes through these
//! phases, each on a queue of its own:
//! 1. **baseline**: the database's own limit with hand-written SQL
//!    ([`store::bench`](crate::store::bench)): one transaction inserting N bare jobs,
//!    single-job transactions, then a drain claiming 100 and completing them per transaction
//!    (SQLite: one connection; PostgreSQL: 4 connections with `SKIP LOCKED`).
//! 2. **batch insert**: N `noop` jobs with [`Store::job_insert_many`], one call per
//!    [`BATCH_INSERT_MAX`] jobs (one call for the default 20,000).
//! 3. **drain**: a [`Runtime`] with the built-in `noop` worker and `concurrency` slots
//!    ([`DEFAULT_CONCURRENCY`] unless told), timed from its start until every one of the N jobs
//!    is completed in the database (an index probe every 1/200 of the time so far).
//! 4. **single insert**: `concurrency` tasks each inserting one job at a time, up to
//!    [`SINGLE_INSERT_MAX`] jobs in all.
//! 5. **latency**: probe jobs inserted one at a time, [`LATENCY_INTERVAL`] apart, into a
//!    queue a runtime works (100 slots, the worker's default); each carries the wall-clock time taken just before its insert
//!    began, and the worker subtracts it from the time it starts (one host, one clock). First
//!    from this process, then from a child process (the `porter` binary itself, with
//!    `bench --latency-inserter K`), when [`BenchOptions::inserter`] names it.
//!
//! Peak RSS is the process's `VmHWM`; for the drain alone it is reset just before the drain
//! (`/proc/self/clear_refs`). Nothing here asserts a time: the figures are reported, and the
//! targets are compared in the README.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::client::insert_params;
use crate::error::{Error, Result};
use crate::job::{InsertOpts, JobArgs, JobState};
use crate::jobs::{Noop, NoopWorker};
use crate::runtime::{Runtime, RuntimeConfig, Shutdown};
use crate::store::bench::RawBaseline;
use crate::store::{Backend, JobInsertParams, Store};
use crate::worker::{Job, JobError, Worker, Workers};

/// Jobs a run inserts and drains unless told otherwise.
pub const DEFAULT_JOBS: usize = 20_000;
/// Slots of the draining runtime (and tasks of the single-insert phase) unless told otherwise.
/// River's benchmark runs 2,000 workers, having found about 1,000 best; `porter worker`
/// defaults to 100 per queue, and `--concurrency 100` measures that.
pub const DEFAULT_CONCURRENCY: usize = 1000;
/// Most jobs of one `job_insert_many` call in the batch-insert phase (bounds memory for runs
/// of a million jobs).
pub const BATCH_INSERT_MAX: usize = 20_000;
/// Most jobs of the single-insert phases (porter's and the baseline's).
pub const SINGLE_INSERT_MAX: usize = 20_000;
/// Time between two latency probes: light load.
pub const LATENCY_INTERVAL: Duration = Duration::from_millis(5);
/// How long a phase may go without progress before the run gives up.
const STALL_LIMIT: Duration = Duration::from_secs(120);
/// How often, at most, the drain counts the jobs left (for the progress bar).
const COUNT_EVERY: Duration = Duration::from_millis(250);

mod sustain;
mod workflow;
pub use sustain::{sustain, SustainInterval, SustainOptions, SustainReport};
pub use workflow::{workflow, WorkflowReport, WORKFLOW_BENCH_MAX_JOBS, WORKFLOW_BENCH_MIN_JOBS};

const DRAIN_QUEUE: &str = "bench";
const SINGLE_QUEUE: &str = "bench_single";
const LATENCY_QUEUE: &str = "bench_latency";

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Jobs inserted and drained (also by the baseline).
    pub jobs: usize,
    /// Slots of the draining runtime, and tasks inserting single jobs.
    pub concurrency: usize,
    /// Latency probes per phase; `None` picks one from `jobs` (20 to 400).
    pub latency_samples: Option<usize>,
    /// The `porter` binary, to measure latency from another process; `None` skips that.
    pub inserter: Option<PathBuf>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            jobs: DEFAULT_JOBS,
            concurrency: DEFAULT_CONCURRENCY,
            latency_samples: None,
            inserter: None,
        }
    }
}

/// The figures of one run (`porter bench --json` prints this).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// `sqlite` or `postgres`.
    pub backend: Backend,
    /// Jobs inserted and drained.
    pub jobs: usize,
    /// Slots of the draining runtime.
    pub concurrency: usize,
    /// Batch insert rate (jobs/s).
    pub insert_jobs_per_sec: f64,
    /// Drain rate (jobs/s), runtime start until every job is completed.
    pub drain_jobs_per_sec: f64,
    /// Enqueue-to-start latency within this process, median (ms).
    pub latency_ms_p50: f64,
    /// Enqueue-to-start latency within this process, 99th percentile (ms).
    pub latency_ms_p99: f64,
    /// Drained jobs that ended `completed` (equals `jobs` when all went well).
    pub completed: usize,
    /// Single-job insert rate from `concurrency` tasks (jobs/s).
    pub single_insert_jobs_per_sec: f64,
    /// Jobs of the single-insert phase.
    pub single_insert_jobs: usize,
    /// Probes per latency phase.
    pub latency_samples: usize,
    /// Enqueue-to-start latency from another process, median (ms); `null` when not measured.
    pub latency_cross_process_ms_p50: Option<f64>,
    /// Enqueue-to-start latency from another process, 99th percentile (ms).
    pub latency_cross_process_ms_p99: Option<f64>,
    /// Peak resident memory of the whole run (MiB).
    pub peak_rss_mib: f64,
    /// Peak resident memory during the drain (MiB), where the kernel lets it be reset.
    pub drain_peak_rss_mib: Option<f64>,
    /// The database's own batch insert rate, hand-written SQL (jobs/s).
    pub baseline_insert_jobs_per_sec: f64,
    /// The database's own single-insert rate, one transaction per job (jobs/s).
    pub baseline_single_insert_jobs_per_sec: f64,
    /// The database's own drain rate, claim 100 + complete 100 per transaction (jobs/s).
    pub baseline_drain_jobs_per_sec: f64,
    /// `drain_jobs_per_sec / baseline_drain_jobs_per_sec`.
    pub drain_vs_baseline: f64,
    /// `insert_jobs_per_sec / baseline_insert_jobs_per_sec`.
    pub insert_vs_baseline: f64,
    /// `single_insert_jobs_per_sec / baseline_single_insert_jobs_per_sec`.
    pub single_insert_vs_baseline: f64,
    /// The least a job queue can be (one table, one partial index), hand-written SQL: batch
    /// insert rate in one transaction (jobs/s). The `baseline_*` figures run the same loops on
    /// porter's own schema, so the two apart show what the schema costs.
    pub minimal_insert_jobs_per_sec: f64,
    /// The minimal queue's single-insert rate, one transaction per job (jobs/s).
    pub minimal_single_insert_jobs_per_sec: f64,
    /// The minimal queue's drain rate, claim 100 + complete 100 per transaction (jobs/s).
    pub minimal_drain_jobs_per_sec: f64,
    /// `drain_jobs_per_sec / minimal_drain_jobs_per_sec`.
    pub drain_vs_minimal: f64,
    /// `insert_jobs_per_sec / minimal_insert_jobs_per_sec`.
    pub insert_vs_minimal: f64,
    /// `single_insert_jobs_per_sec / minimal_single_insert_jobs_per_sec`.
    pub single_insert_vs_minimal: f64,
    /// The `baseline_*` loops (porter's own statements) on the least a table can hold and
    /// still do what they do (a queue, a kind, a priority, a due time, the attempt, the
    /// claiming worker, the times; a partial index each for claimable, running and ended
    /// jobs): batch insert rate in one transaction (jobs/s). Beside `baseline_*` it shows what
    /// a narrower hot table could gain; beside `minimal_*`, what is left to the database.
    pub narrow_insert_jobs_per_sec: f64,
    /// The narrow table's single-insert rate, one transaction per job (jobs/s).
    pub narrow_single_insert_jobs_per_sec: f64,
    /// The narrow table's drain rate, claim 100 + complete 100 per transaction (jobs/s).
    pub narrow_drain_jobs_per_sec: f64,
    /// `drain_jobs_per_sec / narrow_drain_jobs_per_sec`.
    pub drain_vs_narrow: f64,
    /// `insert_jobs_per_sec / narrow_insert_jobs_per_sec`.
    pub insert_vs_narrow: f64,
    /// `narrow_drain_jobs_per_sec / minimal_drain_jobs_per_sec`: the most a narrower table
    /// could bring `drain_vs_minimal` to, were the rest of porter free.
    pub narrow_drain_vs_minimal: f64,
    /// `narrow_insert_jobs_per_sec / minimal_insert_jobs_per_sec`, likewise for inserts.
    pub narrow_insert_vs_minimal: f64,
    /// The plan of the claim query with the drain's jobs waiting.
    pub claim_plan: String,
    /// Where the drain's time went: per store operation it called.
    pub drain_profile: Vec<DrainOp>,
    /// This process's CPU time during the drain per job (microseconds; the database server's
    /// own is not in it, except SQLite's, which runs in this process).
    pub drain_cpu_us_per_job: f64,
    /// This process's CPU time during the drain over its wall time (2.0 is both cores busy).
    pub drain_cpu_share: f64,
}

/// One store operation as the drain called it (from [`Store::op_stats`] before and after).
/// Operations overlap (claims while completions are written), so the shares add up to more
/// or less than 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrainOp {
    /// The operation: `job_claim`, `job_complete_many`, ...
    pub op: String,
    /// Calls during the drain.
    pub calls: u64,
    /// Drained jobs per call.
    pub jobs_per_call: f64,
    /// Mean time per call, waiting for a connection or the SQLite writer included (ms).
    pub ms_per_call: f64,
    /// Time in calls of this operation over the drain's wall time.
    pub share: f64,
}

/// This process's user and system CPU time so far (Linux; zero where it cannot be read).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may hold spaces; the fields after it are plain numbers.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name, in
    // clock ticks of 1/100 s (USER_HZ on Linux).
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2} ms"));
        writeln!(
            f,
            "porter bench on {} ({} jobs, concurrency {})",
            self.backend, self.jobs, self.concurrency
        )?;
        writeln!(
            f,
            "{:<20}{:>12}{:>16}{:>7}{:>16}{:>7}{:>16}{:>7}",
            "",
            "porter",
            "SQL, its schema",
            "ratio",
            "SQL, narrow",
            "ratio",
            "SQL, minimal",
            "ratio"
        )?;
        writeln!(
            f,
            "{:<20}{:>12}{:>16}{:>7}{:>16}{:>7}{:>16}{:>7}",
            "", "", "(hand-written)", "", "(same SQL)", "", "(1 table/index)", ""
        )?;
        let row = |f: &mut std::fmt::Formatter<'_>, name: &str, ours: f64, against: [f64; 3]| {
            write!(f, "{name:<20}{:>12}", per_sec(ours))?;
            for base in against {
                write!(
                    f,
                    "{:>16}{:>6.0}%",
                    per_sec(base),
                    100.0 * ratio(ours, base)
                )?;
            }
            writeln!(f)
        };
        row(
            f,
            "batch insert",
            self.insert_jobs_per_sec,
            [
                self.baseline_insert_jobs_per_sec,
                self.narrow_insert_jobs_per_sec,
                self.minimal_insert_jobs_per_sec,
            ],
        )?;
        row(
            f,
            "single inserts",
            self.single_insert_jobs_per_sec,
            [
                self.baseline_single_insert_jobs_per_sec,
                self.narrow_single_insert_jobs_per_sec,
                self.minimal_single_insert_jobs_per_sec,
            ],
        )?;
        row(
            f,
            "drain",
            self.drain_jobs_per_sec,
            [
                self.baseline_drain_jobs_per_sec,
                self.narrow_drain_jobs_per_sec,
                self.minimal_drain_jobs_per_sec,
            ],
        )?;
        writeln!(
            f,
            "completed                 {} of {}",
            self.completed, self.jobs
        )?;
        writeln!(
            f,
            "latency in process        p50 {}  p99 {}",
            ms(Some(self.latency_ms_p50)),
            ms(Some(self.latency_ms_p99))
        )?;
        writeln!(
            f,
            "latency across processes  p50 {}  p99 {}",
            ms(self.latency_cross_process_ms_p50),
            ms(self.latency_cross_process_ms_p99)
        )?;
        let drain_rss = self
            .drain_peak_rss_mib
            .map_or("-".to_string(), |m| format!("{m:.1} MiB"));
        writeln!(
            f,
            "peak RSS                  {:.1} MiB (drain: {drain_rss})",
            self.peak_rss_mib
        )?;
        writeln!(
            f,
            "drain profile             {:.1} us CPU per job in this process ({:.2} cores busy)",
            self.drain_cpu_us_per_job, self.drain_cpu_share
        )?;
        writeln!(
            f,
            "  {:<22}{:>8}{:>14}{:>12}{:>8}",
            "store operation", "calls", "jobs per call", "ms per call", "busy"
        )?;
        for op in &self.drain_profile {
            writeln!(
                f,
                "  {:<22}{:>8}{:>14.1}{:>12.2}{:>7.0}%",
                op.op,
                op.calls,
                op.jobs_per_call,
                op.ms_per_call,
                op.share * 100.0
            )?;
        }
        writeln!(f, "claim plan:")?;
        for line in self.claim_plan.lines() {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// Opens the database every run of porter bench measures on, refusing one that holds jobs:
/// the figures are comparable only on a fresh one, and each run deletes its own jobs (its
/// queue's) at the end, which would take jobs that were there before with them.
pub(crate) async fn open_without_jobs(database_url: &str) -> Result<Arc<Store>> {
    let store = crate::store::open(database_url).await?;
    let existing: i64 = crate::Client::new(store.clone())
        .counts()
        .await?
        .total
        .values()
        .sum();
    if existing > 0 {
        return Err(Error::invalid(
            "database",
            format!("it holds {existing} jobs; porter bench measures on a database without jobs (give it a fresh one)"),
        ));
    }
    Ok(store)
}

fn per_sec(v: f64) -> String {
    format!("{v:.0}/s")
}

/// A latency probe: carries the wall-clock time (Unix microseconds) taken just before its
/// insert began.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Probe {
    sent_at_us: i64,
    /// From the other process, and which phase it belongs to.
    from_child: bool,
    /// Warms a connection up; not a sample.
    warmup: bool,
}

impl JobArgs for Probe {
    const KIND: &'static str = "bench_probe";
}

/// Latencies seen by the probe worker, in milliseconds.
#[derive(Default)]
struct Seen {
    in_process: Vec<f64>,
    cross_process: Vec<f64>,
    warmups: usize,
}

struct ProbeWorker {
    seen: Arc<Mutex<Seen>>,
}

#[async_trait::async_trait]
impl Worker<Probe> for ProbeWorker {
    async fn work(&self, job: Job<Probe>) -> std::result::Result<(), JobError> {
        let latency_ms = (unix_micros() - job.args.sent_at_us) as f64 / 1000.0;
        let mut seen = self.seen.lock().unwrap();
        match (job.args.warmup, job.args.from_child) {
            (true, _) => seen.warmups += 1,
            (false, false) => seen.in_process.push(latency_ms),
            (false, true) => seen.cross_process.push(latency_ms),
        }
        Ok(())
    }
}

fn unix_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn probe_params(from_child: bool, warmup: bool) -> Result<JobInsertParams> {
    let probe = Probe {
        sent_at_us: unix_micros(),
        from_child,
        warmup,
    };
    insert_params(
        &probe,
        Some(InsertOpts {
            queue: Some(LATENCY_QUEUE.into()),
            ..InsertOpts::default()
        }),
    )
}

/// The child process's part: opens the database, inserts one warm-up probe and then
/// `samples` probes one at a time, [`LATENCY_INTERVAL`] apart, and returns.
/// `porter bench --latency-inserter K` runs this.
pub async fn run_latency_inserter(database_url: &str, samples: usize) -> Result<()> {
    let store = crate::store::open(database_url).await?;
    store
        .job_insert_many(vec![probe_params(true, true)?])
        .await?;
    tokio::time::sleep(LATENCY_INTERVAL * 4).await;
    for _ in 0..samples {
        store
            .job_insert_many(vec![probe_params(true, false)?])
            .await?;
        tokio::time::sleep(LATENCY_INTERVAL).await;
    }
    Ok(())
}

/// Runs the benchmark on the database `database_url` names, which must hold no jobs. With
/// `progress`, draws a progress bar per phase on stderr.
pub async fn run(database_url: &str, opts: BenchOptions, progress: bool) -> Result<BenchReport> {
    if opts.jobs == 0 || opts.concurrency == 0 {
        return Err(Error::invalid(
            "bench",
            "jobs and concurrency must be at least 1",
        ));
    }
    let store = open_without_jobs(database_url).await?;
    let mut probe = BenchProbe::open(database_url).await?;
    let bars = Bars { show: progress };
    let jobs = opts.jobs;
    let single_jobs = jobs.min(SINGLE_INSERT_MAX);
    let samples = opts
        .latency_samples
        .unwrap_or((jobs / 50).clamp(20, 400))
        .max(1);

    // 1. The database's own limit.
    let bar = bars.spinner(
        "baseline",
        "hand-written SQL: insert, single inserts, drain",
    );
    let baseline: RawBaseline = probe.raw_drain_baseline(jobs, single_jobs).await?;
    bar.finish_with_message(format!("drain {}", per_sec(baseline.drain_jobs_per_sec)));
    let bar = bars.spinner(
        "minimal",
        "hand-written SQL on one table and one index: insert, drain, single inserts",
    );
    let minimal: RawBaseline = probe.minimal_baseline(jobs, single_jobs).await?;
    bar.finish_with_message(format!("drain {}", per_sec(minimal.drain_jobs_per_sec)));
    let bar = bars.spinner(
        "narrow",
        "the same SQL on the least table porter's statements need: insert, drain, single inserts",
    );
    let narrow: RawBaseline = probe.narrow_baseline(jobs, single_jobs).await?;
    bar.finish_with_message(format!("drain {}", per_sec(narrow.drain_jobs_per_sec)));

    // 2. Batch insert.
    let bar = bars.counter("batch insert", jobs);
    let started = Instant::now();
    insert_noops(&crate::Client::new(store.clone()), DRAIN_QUEUE, jobs, &bar).await?;
    let insert_jobs_per_sec = crate::store::bench::rate(jobs, started.elapsed());
    bar.finish_with_message(per_sec(insert_jobs_per_sec));
    let claim_plan = probe.explain_claim(DRAIN_QUEUE).await?;

    // 3. Drain.
    let peak_before_drain = peak_rss_kib();
    let drain_rss_reset = reset_peak_rss();
    let bar = bars.counter("drain", jobs);
    let ops_before = store.op_stats();
    let cpu_before = cpu_time();
    let (drained_in, completed) = drain(
        &store,
        &mut probe,
        DRAIN_QUEUE,
        jobs,
        opts.concurrency,
        &bar,
    )
    .await?;
    let drain_jobs_per_sec = crate::store::bench::rate(jobs, drained_in);
    let drain_cpu = cpu_time().saturating_sub(cpu_before);
    let drain_seconds = drained_in.as_secs_f64();
    let drain_profile = drain_ops(&ops_before, &store.op_stats(), jobs, drain_seconds);
    bar.finish_with_message(per_sec(drain_jobs_per_sec));
    let drain_peak = peak_rss_kib();

    // 4. Single inserts from many tasks.
    let bar = bars.counter("single inserts", single_jobs);
    let single_insert_jobs_per_sec =
        single_inserts(&store, single_jobs, opts.concurrency, &bar).await?;
    bar.finish_with_message(per_sec(single_insert_jobs_per_sec));

    // 5. Latency, in this process and from another one.
    let bar = bars.counter(
        "latency",
        samples * if opts.inserter.is_some() { 2 } else { 1 },
    );
    let (in_process, cross_process) =
        latency(&store, database_url, samples, opts.inserter.as_ref(), &bar).await?;
    bar.finish_with_message(format!("p50 {:.2} ms", percentile(&in_process, 0.50)));

    // Its own jobs go: a user's database is not left holding thousands of benchmark jobs.
    for queue in [
        DRAIN_QUEUE,
        SINGLE_QUEUE,
        LATENCY_QUEUE,
        crate::store::bench::RAW_QUEUE,
        crate::store::bench::RAW_SINGLE_QUEUE,
    ] {
        probe.delete_queue(queue).await?;
    }

    let mib = |kib: u64| kib as f64 / 1024.0;
    let peak_rss_mib = mib(peak_before_drain.max(drain_peak).max(peak_rss_kib()));
    Ok(BenchReport {
        backend: store.backend(),
        jobs,
        concurrency: opts.concurrency,
        insert_jobs_per_sec,
        drain_jobs_per_sec,
        latency_ms_p50: percentile(&in_process, 0.50),
        latency_ms_p99: percentile(&in_process, 0.99),
        completed,
        single_insert_jobs_per_sec,
        single_insert_jobs: single_jobs,
        latency_samples: samples,
        latency_cross_process_ms_p50: cross_process.as_ref().map(|v| percentile(v, 0.50)),
        latency_cross_process_ms_p99: cross_process.as_ref().map(|v| percentile(v, 0.99)),
        peak_rss_mib,
        drain_peak_rss_mib: drain_rss_reset.then(|| mib(drain_peak)),
        baseline_insert_jobs_per_sec: baseline.batch_insert_jobs_per_sec,
        baseline_single_insert_jobs_per_sec: baseline.single_insert_jobs_per_sec,
        baseline_drain_jobs_per_sec: baseline.drain_jobs_per_sec,
        drain_vs_baseline: ratio(drain_jobs_per_sec, baseline.drain_jobs_per_sec),
        insert_vs_baseline: ratio(insert_jobs_per_sec, baseline.batch_insert_jobs_per_sec),
        single_insert_vs_baseline: ratio(
            single_insert_jobs_per_sec,
            baseline.single_insert_jobs_per_sec,
        ),
        minimal_insert_jobs_per_sec: minimal.batch_insert_jobs_per_sec,
        minimal_single_insert_jobs_per_sec: minimal.single_insert_jobs_per_sec,
        minimal_drain_jobs_per_sec: minimal.drain_jobs_per_sec,
        drain_vs_minimal: ratio(drain_jobs_per_sec, minimal.drain_jobs_per_sec),
        insert_vs_minimal: ratio(insert_jobs_per_sec, minimal.batch_insert_jobs_per_sec),
        single_insert_vs_minimal: ratio(
            single_insert_jobs_per_sec,
            minimal.single_insert_jobs_per_sec,
        ),
        narrow_insert_jobs_per_sec: narrow.batch_insert_jobs_per_sec,
        narrow_single_insert_jobs_per_sec: narrow.single_insert_jobs_per_sec,
        narrow_drain_jobs_per_sec: narrow.drain_jobs_per_sec,
        drain_vs_narrow: ratio(drain_jobs_per_sec, narrow.drain_jobs_per_sec),
        insert_vs_narrow: ratio(insert_jobs_per_sec, narrow.batch_insert_jobs_per_sec),
        narrow_drain_vs_minimal: ratio(narrow.drain_jobs_per_sec, minimal.drain_jobs_per_sec),
        narrow_insert_vs_minimal: ratio(
            narrow.batch_insert_jobs_per_sec,
            minimal.batch_insert_jobs_per_sec,
        ),
        claim_plan,
        drain_profile,
        drain_cpu_us_per_job: drain_cpu.as_secs_f64() * 1e6 / jobs as f64,
        drain_cpu_share: drain_cpu.as_secs_f64() / drain_seconds,
    })
}

/// The store operations called between two [`Store::op_stats`], busiest first.
fn drain_ops(
    before: &std::collections::BTreeMap<&'static str, crate::store::OpStats>,
    after: &std::collections::BTreeMap<&'static str, crate::store::OpStats>,
    jobs: usize,
    seconds: f64,
) -> Vec<DrainOp> {
    let mut ops: Vec<DrainOp> = after
        .iter()
        .filter_map(|(op, a)| {
            let b = before.get(op).copied().unwrap_or_default();
            let calls = a.calls - b.calls;
            let busy = a.seconds - b.seconds;
            (calls > 0).then(|| DrainOp {
                op: op.to_string(),
                calls,
                jobs_per_call: jobs as f64 / calls as f64,
                ms_per_call: busy * 1000.0 / calls as f64,
                share: busy / seconds,
            })
        })
        .collect();
    ops.sort_by(|a, b| b.share.total_cmp(&a.share));
    ops
}

fn ratio(ours: f64, raw: f64) -> f64 {
    if raw > 0.0 {
        ours / raw
    } else {
        0.0
    }
}

/// Runs a runtime with the noop worker on `queue` until no job of it is available or running;
/// returns how long that took and how many of its jobs ended completed: every one, or the drain
/// is an error.
async fn drain(
    store: &Arc<Store>,
    probe: &mut BenchProbe,
    queue: &str,
    jobs: usize,
    concurrency: usize,
    bar: &ProgressBar,
) -> Result<(Duration, usize)> {
    let mut workers = Workers::new();
    workers.add(NoopWorker)?;
    let config = RuntimeConfig {
        queues: vec![(queue.to_string(), concurrency)],
        maintenance: false,
        ..RuntimeConfig::default()
    };
    let shutdown = Shutdown::new();
    let started = Instant::now();
    let running = tokio::spawn(Runtime::new(store.clone(), workers, config).run(shutdown.clone()));
    let mut last_left = jobs as i64;
    let mut last_progress = Instant::now();
    let mut next_count = Instant::now();
    let outcome = loop {
        // Whether any job is left is one index probe, asked often enough to time the drain
        // within ~0.5 %; counting them (for the bar, and to notice a stall) reads an index range
        // as long as the queue, so that is done rarely, and only as often as it stays cheap.
        match probe.any_unfinished(queue).await {
            Ok(false) => break Ok(started.elapsed()),
            Ok(true) => {}
            Err(e) => break Err(e),
        }
        if Instant::now() >= next_count {
            let asked = Instant::now();
            let left = match probe.unfinished(queue).await {
                Ok(left) => left,
                Err(e) => break Err(e),
            };
            bar.set_position((jobs as i64 - left).max(0) as u64);
            if left < last_left {
                last_left = left;
                last_progress = Instant::now();
            } else if last_progress.elapsed() > STALL_LIMIT {
                break Err(Error::Timeout(STALL_LIMIT));
            }
            next_count = Instant::now() + (asked.elapsed() * 50).max(COUNT_EVERY);
        }
        if running.is_finished() {
            break Err(Error::Database("the draining runtime stopped early".into()));
        }
        tokio::time::sleep((started.elapsed() / 200).max(Duration::from_millis(1))).await;
    };
    shutdown.soft.cancel();
    let stopped = running.await.map_err(|e| Error::Database(e.to_string()))?;
    let elapsed = outcome?;
    stopped?;
    let counts = crate::Client::new(store.clone()).counts().await?;
    let completed = counts
        .queues
        .get(queue)
        .and_then(|q| q.get(&JobState::Completed))
        .copied()
        .unwrap_or(0) as usize;
    // The end probe looks for jobs still to do now: one left scheduled, retryable, cancelled or
    // discarded ends the drain as well, and its figures would then be of part of the jobs.
    if completed != jobs {
        return Err(Error::Database(format!(
            "{completed} of {jobs} jobs of {queue} completed: the figures would not be of the \
             whole drain"
        )));
    }
    Ok((elapsed, completed))
}

/// `tasks` tasks insert `jobs` jobs between them, one job per call.
async fn single_inserts(
    store: &Arc<Store>,
    jobs: usize,
    tasks: usize,
    bar: &ProgressBar,
) -> Result<f64> {
    let noop = insert_params(
        &Noop {},
        Some(InsertOpts {
            queue: Some(SINGLE_QUEUE.into()),
            ..InsertOpts::default()
        }),
    )?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks.min(jobs))
        .map(|_| {
            let (store, next, noop, bar) = (store.clone(), next.clone(), noop.clone(), bar.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < jobs {
                    crate::Client::new(store.clone())
                        .insert_many_params(vec![noop.clone()])
                        .await?;
                    bar.inc(1);
                }
                Ok::<_, Error>(())
            })
        })
        .collect();
    for h in handles {
        h.await.map_err(|e| Error::Database(e.to_string()))??;
    }
    Ok(crate::store::bench::rate(jobs, started.elapsed()))
}

/// Probes latency in this process, then (with an inserter binary) from a child process.
async fn latency(
    store: &Arc<Store>,
    database_url: &str,
    samples: usize,
    inserter: Option<&PathBuf>,
    bar: &ProgressBar,
) -> Result<(Vec<f64>, Option<Vec<f64>>)> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut workers = Workers::new();
    workers.add(ProbeWorker { seen: seen.clone() })?;
    let config = RuntimeConfig {
        queues: vec![(LATENCY_QUEUE.to_string(), 100)],
        maintenance: false,
        ..RuntimeConfig::default()
    };
    let shutdown = Shutdown::new();
    let running = tokio::spawn(Runtime::new(store.clone(), workers, config).run(shutdown.clone()));
    let result = async {
        let wait_for = |what: &'static str, done: Box<dyn Fn(&Seen) -> bool + Send>| {
            let seen = seen.clone();
            let bar = bar.clone();
            async move {
                let deadline = Instant::now() + STALL_LIMIT;
                loop {
                    {
                        let s = seen.lock().unwrap();
                        bar.set_position((s.in_process.len() + s.cross_process.len()) as u64);
                        if done(&s) {
                            return Ok(());
                        }
                    }
                    if Instant::now() > deadline {
                        return Err(Error::Database(format!(
                            "latency probes {what} never started"
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        };
        // A warm-up probe: the runtime is up and the connections are open.
        store
            .job_insert_many(vec![probe_params(false, true)?])
            .await?;
        wait_for("of the warm-up", Box::new(|s| s.warmups >= 1)).await?;
        for _ in 0..samples {
            store
                .job_insert_many(vec![probe_params(false, false)?])
                .await?;
            tokio::time::sleep(LATENCY_INTERVAL).await;
        }
        wait_for(
            "from this process",
            Box::new(move |s| s.in_process.len() >= samples),
        )
        .await?;

        let Some(exe) = inserter else {
            return Ok(false);
        };
        let child = tokio::process::Command::new(exe)
            .args(["bench", "--latency-inserter", &samples.to_string()])
            .env("DATABASE_URL", database_url)
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(STALL_LIMIT, child)
            .await
            .map_err(|_| Error::Timeout(STALL_LIMIT))?
            .map_err(|e| Error::Database(format!("cannot start {}: {e}", exe.display())))?;
        if !out.status.success() {
            return Err(Error::Database(format!(
                "the latency inserter failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        wait_for(
            "from the other process",
            Box::new(move |s| s.cross_process.len() >= samples),
        )
        .await?;
        Ok(true)
    }
    .await;
    shutdown.soft.cancel();
    let stopped = running.await.map_err(|e| Error::Database(e.to_string()))?;
    let crossed = result?;
    stopped?;
    let s = std::mem::take(&mut *seen.lock().unwrap());
    Ok((s.in_process, crossed.then_some(s.cross_process)))
}

/// The nearest-rank percentile of `values` (0 when empty).
fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The process's peak resident set so far (`VmHWM`, KiB); 0 where /proc has none.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resets the peak resident set to the current one (Linux 4.0+); false where it cannot.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Progress bars on stderr, or nothing.
struct Bars {
    show: bool,
}

impl Bars {
    fn counter(&self, phase: &str, len: usize) -> ProgressBar {
        if !self.show {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{prefix:>14} [{bar:30}] {pos:>8}/{len:<8} {msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(phase.to_string());
        bar
    }

    fn spinner(&self, phase: &str, message: &str) -> ProgressBar {
        if !self.show {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{prefix:>14} {spinner} {msg}").expect("a valid template"),
        );
        bar.set_prefix(phase.to_string());
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    }
}

/// A connection of its own beside the store, for the benchmark's measurements.
pub enum BenchProbe {
    /// On SQLite.
    Sqlite(crate::store::sqlite::bench::Probe),
    /// On PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres(Box<crate::store::postgres::bench::Probe>),
}

impl BenchProbe {
    /// Connects to the database a URL names (already migrated by the store).
    pub async fn open(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            return Ok(BenchProbe::Sqlite(
                crate::store::sqlite::bench::Probe::open(url).await?,
            ));
        }
        #[cfg(feature = "postgres")]
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(BenchProbe::Postgres(Box::new(
                crate::store::postgres::bench::Probe::open(url).await?,
            )));
        }
        Err(Error::invalid(
            "database url",
            format!(
                "{} is not a database porter bench knows",
                crate::store::redact_url(url)
            ),
        ))
    }

    /// How many jobs of `queue` are pending, available or running (index ranges, not a table
    /// scan).
    pub async fn unfinished(&mut self, queue: &str) -> Result<i64> {
        match self {
            BenchProbe::Sqlite(p) => p.unfinished(queue).await,
            #[cfg(feature = "postgres")]
            BenchProbe::Postgres(p) => p.unfinished(queue).await,
        }
    }

    /// Whether any job of `queue` is pending, available or running (index probes).
    pub async fn any_unfinished(&mut self, queue: &str) -> Result<bool> {
        match self {
            BenchProbe::Sqlite(p) => p.any_unfinished(queue).await,
            #[cfg(feature = "postgres")]
            BenchProbe::Postgres(p) => p.any_unfinished(queue).await,
        }
    }

    /// How many jobs of a drained `queue` started before a parent of theirs ended, from the
    /// rows' times.
    pub async fn started_early(&mut self, queue: &str) -> Result<i64> {
        match self {
            BenchProbe::Sqlite(p) => p.started_early(queue).await,
            #[cfg(feature = "postgres")]
            BenchProbe::Postgres(p) => p.started_early(queue).await,
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
    /// [`RAW_QUEUE`](crate::store::bench::RAW_QUEUE): one batch insert, single inserts, then
    /// the drain.
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

    /// Opens a transaction elsewhere in the database that stays open until the holder is
    /// dropped.
    pub async fn hold_snapshot(&mut self) -> Result<SnapshotHolder> {
        match self {
            BenchProbe::Sqlite(p) => Ok(SnapshotHolder::Sqlite(p.hold_snapshot().await?)),
            #[cfg(feature = "postgres")]
            BenchProbe::Postgres(p) => Ok(SnapshotHolder::Postgres(p.hold_snapshot().await?)),
        }
    }

    /// What the database holds on to now: the WAL's size on SQLite, dead row versions of the
    /// jobs table on Postgres.
    pub async fn held_on_to(&mut self) -> Result<(Option<u64>, Option<i64>)> {
        match self {
            BenchProbe::Sqlite(p) => Ok((p.wal_bytes(), None)),
            #[cfg(feature = "postgres")]
            BenchProbe::Postgres(p) => Ok((None, p.dead_rows().await?)),
        }
    }

    /// Between two cases of `porter bench --workflow`, once the first's jobs are deleted:
    /// the database's leftovers of them made reusable (PostgreSQL: `VACUUM` of porter's job
    /// tables; SQLite: the WAL emptied into the file).
    pub async fn settle(&mut self) -> Result<()> {
        match self {
            BenchProbe::Sqlite(p) => p.settle().await,
            #[cfg(feature = "postgres")]
            BenchProbe::Postgres(p) => p.settle().await,
        }
    }

    /// Deletes every job of one of the benchmark's own queues.
    pub async fn delete_queue(&mut self, queue: &str) -> Result<u64> {
        match self {
            BenchProbe::Sqlite(p) => p.delete_queue(queue).await,
            #[cfg(feature = "postgres")]
            BenchProbe::Postgres(p) => p.delete_queue(queue).await,
        }
    }

    /// Measures the same on the least a job queue can be: one table, one partial index,
    /// dropped again afterwards.
    pub async fn minimal_baseline(
        &mut self,
        jobs: usize,
        single_jobs: usize,
    ) -> Result<RawBaseline> {
        match self {
            BenchProbe::Sqlite(p) => p.minimal_baseline(jobs, single_jobs).await,
            #[cfg(feature = "postgres")]
            BenchProbe::Postgres(p) => p.minimal_baseline(jobs, single_jobs).await,
        }
    }

    /// Measures porter's own statements on the least table they need, dropped again
    /// afterwards.
    pub async fn narrow_baseline(
        &mut self,
        jobs: usize,
        single_jobs: usize,
    ) -> Result<RawBaseline> {
        match self {
            BenchProbe::Sqlite(p) => p.narrow_baseline(jobs, single_jobs).await,
            #[cfg(feature = "postgres")]
            BenchProbe::Postgres(p) => p.narrow_baseline(jobs, single_jobs).await,
        }
    }

    /// `jobs` jobs in `width` chains (each after the one `width` before it; `width == jobs`
    /// for none), hand-written on the minimal table with dependencies: inserted, then drained
    /// as [`BenchProbe::minimal_baseline`] drains, each completion making the job that waited
    /// for it claimable (`porter bench --workflow`'s baseline).
    pub async fn chains_baseline(
        &mut self,
        jobs: usize,
        width: usize,
    ) -> Result<crate::store::bench::ChainsBaseline> {
        match self {
            BenchProbe::Sqlite(p) => p.chains_baseline(jobs, width).await,
            #[cfg(feature = "postgres")]
            BenchProbe::Postgres(p) => p.chains_baseline(jobs, width).await,
        }
    }
}

/// A transaction held open elsewhere in the database; closed when dropped.
pub enum SnapshotHolder {
    /// A long SQLite reader.
    Sqlite(crate::store::sqlite::bench::Holder),
    /// An open Postgres transaction.
    #[cfg(feature = "postgres")]
    Postgres(crate::store::postgres::bench::Holder),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.50), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[3.0], 0.99), 3.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn cpu_time_is_read_from_proc_and_grows() {
        // Spun until the CPU time grows (a thread the machine starves may get no tick in a
        // fixed wall time); the deadline only stops a reading that never grows.
        let before = cpu_time();
        let mut x = 0u64;
        let spin = std::time::Instant::now();
        while cpu_time() <= before && spin.elapsed() < Duration::from_secs(30) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
        assert!(cpu_time() > before, "spinning shows as CPU time");
    }

    #[test]
    fn peak_rss_is_read_from_proc() {
        assert!(peak_rss_kib() > 0);
    }
}

/// What `porter bench --limits` measured: the same no-op jobs drained from a queue without
/// limits, from one with a global concurrency limit larger than the worker's slots (so it
/// never binds: what the limited claim itself costs), and from one with a per-key limit of 1
/// across [`LIMIT_BENCH_KEYS`] keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LimitsReport {
    /// Which database.
    pub backend: Backend,
    /// Jobs drained per case.
    pub jobs: usize,
    /// The worker's slots.
    pub concurrency: usize,
    /// Drain rate of the queue without limits.
    pub unlimited_jobs_per_sec: f64,
    /// Drain rate with `--concurrency` at twice the slots.
    pub global_limit_jobs_per_sec: f64,
    /// `global_limit_jobs_per_sec / unlimited_jobs_per_sec`.
    pub global_limit_ratio: f64,
    /// Drain rate with `--per-key 1`, the jobs spread over the keys.
    pub per_key_jobs_per_sec: f64,
    /// `per_key_jobs_per_sec / unlimited_jobs_per_sec`.
    pub per_key_ratio: f64,
    /// Keys of the per-key case.
    pub keys: usize,
    /// No-op jobs inserted and drained before the cases, untimed: the case the ratios divide
    /// by is not the process's first drain.
    #[serde(default)]
    pub warmup_jobs: usize,
    /// The store operations of the drain without limits, busiest first (claims and their
    /// sizes are where limits cost).
    #[serde(default)]
    pub unlimited_ops: Vec<DrainOp>,
    /// The store operations of the drain with the global limit.
    #[serde(default)]
    pub global_limit_ops: Vec<DrainOp>,
    /// The store operations of the drain with the per-key limit.
    #[serde(default)]
    pub per_key_ops: Vec<DrainOp>,
}

impl std::fmt::Display for LimitsReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "backend {}, {} no-op jobs per case, {} slots",
            self.backend, self.jobs, self.concurrency
        )?;
        writeln!(f, "{}", warmed_up(self.warmup_jobs))?;
        writeln!(
            f,
            "no limits            {:>10.0} jobs/s",
            self.unlimited_jobs_per_sec
        )?;
        writeln!(
            f,
            "global limit {:<7} {:>10.0} jobs/s  {:>5.0} % of no limits",
            self.concurrency * 2,
            self.global_limit_jobs_per_sec,
            self.global_limit_ratio * 100.0
        )?;
        writeln!(
            f,
            "per key 1, {} keys {:>8.0} jobs/s  {:>5.0} % of no limits",
            self.keys,
            self.per_key_jobs_per_sec,
            self.per_key_ratio * 100.0
        )?;
        for (case, ops) in [
            ("no limits", &self.unlimited_ops),
            ("global limit", &self.global_limit_ops),
            ("per key", &self.per_key_ops),
        ] {
            if let Some(claim) = ops.iter().find(|o| o.op == "job_claim") {
                writeln!(
                    f,
                    "claims, {case:<12} {:>6} calls  {:>6.1} jobs each  {:>6.2} ms each",
                    claim.calls, claim.jobs_per_call, claim.ms_per_call
                )?;
            }
        }
        Ok(())
    }
}

/// Keys of the per-key case of [`limits`].
pub const LIMIT_BENCH_KEYS: usize = 1000;

/// `porter bench --limits`: see [`LimitsReport`]. Needs a database without jobs.
pub async fn limits(database_url: &str, jobs: usize, concurrency: usize) -> Result<LimitsReport> {
    if jobs == 0 || concurrency == 0 {
        return Err(Error::invalid(
            "bench",
            "jobs and concurrency must be at least 1",
        ));
    }
    let store = open_without_jobs(database_url).await?;
    let client = crate::Client::new(store.clone());
    let mut probe = BenchProbe::open(database_url).await?;
    let global = crate::store::QueueLimits {
        concurrency: Some((concurrency * 2).min(crate::store::limits::MAX_LIMIT as usize) as u32),
        ..Default::default()
    };
    let per_key = crate::store::QueueLimits {
        per_key: Some(1),
        ..Default::default()
    };
    warm_up(
        &client,
        &mut probe,
        jobs,
        concurrency,
        &ProgressBar::hidden(),
    )
    .await?;
    let (unlimited, unlimited_ops) = limited_drain(
        &client,
        &mut probe,
        "bench_unlimited",
        None,
        false,
        jobs,
        concurrency,
    )
    .await?;
    let (global_rate, global_limit_ops) = limited_drain(
        &client,
        &mut probe,
        "bench_global",
        Some(global),
        false,
        jobs,
        concurrency,
    )
    .await?;
    let (keyed, per_key_ops) = limited_drain(
        &client,
        &mut probe,
        "bench_keys",
        Some(per_key),
        true,
        jobs,
        concurrency,
    )
    .await?;
    Ok(LimitsReport {
        backend: store.backend(),
        jobs,
        concurrency,
        unlimited_jobs_per_sec: unlimited,
        global_limit_jobs_per_sec: global_rate,
        global_limit_ratio: global_rate / unlimited,
        per_key_jobs_per_sec: keyed,
        per_key_ratio: keyed / unlimited,
        keys: LIMIT_BENCH_KEYS,
        warmup_jobs: jobs,
        unlimited_ops,
        global_limit_ops,
        per_key_ops,
    })
}

/// Inserts `jobs` no-op jobs into `queue` (keyed round-robin when asked), sets its limits,
/// then drains it with one runtime of `concurrency` slots, deletes its jobs and lifts its
/// limits, so that the next case starts as this one did; returns jobs per second and the store
/// operations the drain called.
async fn limited_drain(
    client: &crate::Client,
    probe: &mut BenchProbe,
    queue: &str,
    limits: Option<crate::store::QueueLimits>,
    keyed: bool,
    jobs: usize,
    concurrency: usize,
) -> Result<(f64, Vec<DrainOp>)> {
    let mut left = jobs;
    let mut n = 0usize;
    while left > 0 {
        let batch = left.min(5000);
        let params = (0..batch)
            .map(|i| {
                insert_params(
                    &Noop {},
                    Some(InsertOpts {
                        queue: Some(queue.to_string()),
                        concurrency_key: keyed.then(|| format!("k{}", (n + i) % LIMIT_BENCH_KEYS)),
                        ..Default::default()
                    }),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        client.insert_many_params(params).await?;
        n += batch;
        left -= batch;
    }
    if let Some(set) = limits {
        client
            .queue_limit(crate::store::QueueLimitParams {
                queue: queue.to_string(),
                clear: false,
                set,
            })
            .await?;
    }
    // The drain's end is watched the way the main bench watches it (one index probe on its
    // own connection), not by counting every job of the database every 10 ms: that count
    // grew with the jobs of the cases before, so it loaded the later cases more.
    let ops_before = client.store().op_stats();
    let (elapsed, _) = drain(
        client.store(),
        probe,
        queue,
        jobs,
        concurrency,
        &ProgressBar::hidden(),
    )
    .await?;
    let ops = drain_ops(
        &ops_before,
        &client.store().op_stats(),
        jobs,
        elapsed.as_secs_f64(),
    );
    clear(client, probe, queue).await?;
    if limits.is_some() {
        // Lifted again: a user's database is not left with the run's limits on its queues.
        client
            .queue_limit(crate::store::QueueLimitParams {
                queue: queue.to_string(),
                clear: true,
                set: crate::store::QueueLimits::default(),
            })
            .await?;
    }
    Ok((crate::store::bench::rate(jobs, elapsed), ops))
}

/// Queue of the untimed jobs [`warm_up`] drains.
const WARMUP_QUEUE: &str = "bench_warmup";

/// Inserts `jobs` no-op jobs and drains them with `concurrency` slots, untimed, then deletes
/// them, before the first timed case of a run whose ratios divide by that case (`--workflow`,
/// `--limits`). The first drain of a process pays for what the later ones find ready: the
/// runtime's threads, the pool's connections and their prepared statements, the server's caches
/// (review of 7 Dec: the same jobs drained first took 10-25 ms longer than drained third, on
/// both backends, which made every ratio over the first case smaller).
async fn warm_up(
    client: &crate::Client,
    probe: &mut BenchProbe,
    jobs: usize,
    concurrency: usize,
    bar: &ProgressBar,
) -> Result<()> {
    insert_noops(client, WARMUP_QUEUE, jobs, &ProgressBar::hidden()).await?;
    drain(client.store(), probe, WARMUP_QUEUE, jobs, concurrency, bar).await?;
    clear(client, probe, WARMUP_QUEUE).await
}

/// Inserts `jobs` no-op jobs into `queue`, at most [`BATCH_INSERT_MAX`] a call, counting them
/// on `bar`.
async fn insert_noops(
    client: &crate::Client,
    queue: &str,
    jobs: usize,
    bar: &ProgressBar,
) -> Result<()> {
    let noop = insert_params(
        &Noop {},
        Some(InsertOpts {
            queue: Some(queue.into()),
            ..InsertOpts::default()
        }),
    )?;
    let mut left = jobs;
    while left > 0 {
        let n = left.min(BATCH_INSERT_MAX);
        let inserted = client.insert_many_params(vec![noop.clone(); n]).await?;
        if inserted.len() != n {
            return Err(Error::Database(format!(
                "inserted {} jobs of {n}",
                inserted.len()
            )));
        }
        left -= n;
        bar.inc(n as u64);
    }
    Ok(())
}

/// How a report says it was warmed up ([`warm_up`]).
fn warmed_up(jobs: usize) -> String {
    format!("warmed up first with {jobs} no-op jobs inserted and drained, untimed")
}

/// Deletes a case's jobs and settles the database, so that the next case starts as the first
/// did: with no job in it.
async fn clear(client: &crate::Client, probe: &mut BenchProbe, queue: &str) -> Result<()> {
    probe.delete_queue(queue).await?;
    probe.settle().await?;
    let left: i64 = client.counts().await?.total.values().sum();
    if left > 0 {
        return Err(Error::Database(format!(
            "{left} jobs are left after deleting the case's own; the next case would not start \
             on empty tables"
        )));
    }
    Ok(())
}
