//! `porter bench`: porter's speed on the database it is given, next to what that database
//! does with hand-written SQL (see [`crate::bench`]).

use clap::builder::RangedU64ValueParser;
use clap::Args;

use super::{output, parse_duration, usage, GlobalArgs};
use crate::bench::{BenchOptions, DEFAULT_CONCURRENCY, DEFAULT_JOBS};

/// `porter bench`
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Jobs to insert and drain (the database must hold no jobs yet: give it a fresh one).
    #[arg(long, default_value_t = DEFAULT_JOBS, value_parser = RangedU64ValueParser::<usize>::new().range(1..=100_000_000))]
    jobs: usize,
    /// Slots of the draining worker, and tasks inserting single jobs at once.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY, value_parser = RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    concurrency: usize,
    /// Print the figures as one JSON object (and draw no progress bar).
    #[arg(long)]
    json: bool,
    /// Instead of the usual phases: enqueue steadily at --rate and drain, for this long (e.g.
    /// 10m), and report each interval (throughput, latency, backlog, what the database holds
    /// on to). Its jobs are deleted afterwards.
    #[arg(long, value_parser = parse_duration)]
    sustain: Option<std::time::Duration>,
    /// With --sustain: jobs enqueued per second.
    #[arg(long, default_value_t = 1000, requires = "sustain", value_parser = RangedU64ValueParser::<u64>::new().range(1..=10_000_000))]
    rate: u64,
    /// With --sustain: keep a transaction open elsewhere in the database the whole time
    /// (Postgres: vacuum held back; SQLite: a long reader).
    #[arg(long, requires = "sustain")]
    hold: bool,
    /// With --sustain: the length of one reported interval.
    #[arg(long, default_value = "60s", requires = "sustain", value_parser = parse_duration)]
    interval: std::time::Duration,
    /// Instead of the usual phases: drain --jobs no-op jobs from a queue without limits, one
    /// with a global limit of twice --concurrency, and one with a per-key limit of 1 across
    /// 1,000 keys, and compare (what queue limits cost).
    #[arg(long, conflicts_with = "sustain")]
    limits: bool,
    /// Instead of the usual phases: insert and drain --jobs no-op jobs without dependencies,
    /// then as one workflow of a root, the rest after it and a fan-in step after those, then
    /// as one workflow of √N chains, and compare (what dependencies cost). Takes 3 to 10,002
    /// jobs.
    #[arg(long, conflicts_with_all = ["sustain", "limits"])]
    workflow: bool,
    /// With --workflow: how many chains the chains case has (default √N, rounded), each about
    /// N / chains steps long. Fewer, longer chains wait on more writes in a row.
    #[arg(long, requires = "workflow", value_parser = RangedU64ValueParser::<usize>::new().range(1..=crate::bench::WORKFLOW_BENCH_MAX_JOBS as u64))]
    chains: Option<usize>,
    /// Inserts this many latency probes and exits: the other process of a running
    /// `porter bench`, which starts it.
    #[arg(long, hide = true)]
    latency_inserter: Option<usize>,
}

/// The bench's own checks of its flags (`invalid bench: ...`, made before anything opens) are
/// usage errors, exit 2, as clap's are (until 7 Dec exit 1); the rest are what they are.
fn flags_checked<T>(result: crate::Result<T>) -> anyhow::Result<T> {
    match result {
        Err(e @ crate::Error::Invalid { what: "bench", .. }) => usage(Err(e)),
        other => Ok(other?),
    }
}

pub(super) async fn run(g: &GlobalArgs, args: BenchArgs) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    g.check_url()?;
    if let Some(samples) = args.latency_inserter {
        return Ok(crate::bench::run_latency_inserter(&g.database_url, samples).await?);
    }
    if args.limits {
        let report = flags_checked(
            crate::bench::limits(&g.database_url, args.jobs, args.concurrency).await,
        )?;
        return if args.json {
            output::print_json(&report)
        } else {
            output::print(&report.to_string())
        };
    }
    if args.workflow {
        let progress = !args.json && std::io::stderr().is_terminal();
        let report = crate::bench::workflow(
            &g.database_url,
            args.jobs,
            args.concurrency,
            args.chains,
            progress,
        )
        .await;
        let report = flags_checked(report)?;
        return if args.json {
            output::print_json(&report)
        } else {
            output::print(&report.to_string())
        };
    }
    if let Some(duration) = args.sustain {
        let options = crate::bench::SustainOptions {
            duration,
            rate: args.rate as f64,
            concurrency: args.concurrency,
            hold: args.hold,
            interval: args.interval,
        };
        let report = flags_checked(crate::bench::sustain(&g.database_url, options).await)?;
        return if args.json {
            output::print_json(&report)
        } else {
            output::print(&report.to_string())
        };
    }
    let options = BenchOptions {
        jobs: args.jobs,
        concurrency: args.concurrency,
        latency_samples: None,
        // This very binary measures latency from another process.
        inserter: std::env::current_exe().ok(),
    };
    let progress = !args.json && std::io::stderr().is_terminal();
    let report = flags_checked(crate::bench::run(&g.database_url, options, progress).await)?;
    if args.json {
        output::print_json(&report)
    } else {
        output::print(&report.to_string())
    }
}
