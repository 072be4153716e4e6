//! `porter bench --workflow`: what dependencies cost. The same N no-op jobs are inserted and
//! drained three times, each on a queue of its own, by one runtime of the same slots:
//! 1. **plain**: no dependencies, inserted with one [`Client::insert_many_params`] call;
//! 2. **fan**: one workflow, a root step, N - 2 steps after it, and one fan-in step after all
//!    of those (fetch, process each item, report): at most [`MAX_PARENTS`] + 2 jobs;
//! 3. **chains**: one workflow of √N chains (rounded; or as many as asked) of about N / chains
//!    steps each, every step after the one before it in its chain (100 chains of 100 for
//!    10,000 jobs): few jobs claimable at a time, and each step's start waits for its
//!    parent's completion to be written.
//!
//! Each case is timed from the start of its insert until its last job is completed in the
//! database (the drain as in [`crate::bench::run`]); the workflow cases are reported as a
//! ratio to the plain one. Each case's jobs are deleted once it is timed, and the database
//! settled ([`BenchProbe::settle`]), so that every case starts on job tables as empty as the
//! first one's, as each hand-written case below starts on a table of its own. (Until 5 Dec the
//! jobs stayed until the end: the chains ran beside the 20,000 ended jobs of the two cases
//! before them, and on PostgreSQL beside their dead row versions and the autovacuum they
//! called for, where the plain case ran on empty tables.)
//!
//! The same run then measures what the chains shape costs the database itself: the plain and
//! the chains cases hand-written on the least a queue with dependencies can be (one table with
//! the job each job waits for, two partial indexes; [`BenchProbe::chains_baseline`]), claimed
//! a hundred at a time and completed in the same transaction as the writes that make the next
//! steps claimable. Their ratio is the shape's own cost; porter's chains against the
//! hand-written ones is what porter adds to it.
//!
//! [`Client::insert_many_params`]: crate::Client::insert_many_params
//! [`MAX_PARENTS`]: crate::store::MAX_PARENTS

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{drain, Bars, BenchProbe};
use crate::client::insert_params;
use crate::error::{Error, Result};
use crate::job::{InsertOpts, JobArgs};
use crate::jobs::Noop;
use crate::store::{Backend, MAX_PARENTS};
use crate::workflow::{Step, Workflow};

const PLAIN_QUEUE: &str = "bench_plain";
const FAN_QUEUE: &str = "bench_fan";
const CHAINS_QUEUE: &str = "bench_chains";

/// Fewest jobs of a run: the fan shape needs a root, a step and the fan-in.
pub const WORKFLOW_BENCH_MIN_JOBS: usize = 3;
/// Most jobs of a run: the fan-in step waits for at most [`MAX_PARENTS`] steps.
pub const WORKFLOW_BENCH_MAX_JOBS: usize = MAX_PARENTS + 2;

/// What `porter bench --workflow` measured (seconds; `*_secs` = insert + drain).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkflowReport {
    /// Which database.
    pub backend: Backend,
    /// Jobs per case.
    pub jobs: usize,
    /// The draining runtime's slots.
    pub concurrency: usize,
    /// No-op jobs inserted and drained before the cases, untimed (see `warm_up`): the plain
    /// case every ratio divides by is not the first drain of the process.
    #[serde(default)]
    pub warmup_jobs: usize,
    /// Inserting the jobs without dependencies.
    pub plain_insert_secs: f64,
    /// Draining them.
    pub plain_drain_secs: f64,
    /// Both.
    pub plain_secs: f64,
    /// Jobs of the plain case that ended completed.
    pub plain_completed: usize,
    /// Inserting the fan-out/fan-in workflow.
    pub fan_insert_secs: f64,
    /// Draining it.
    pub fan_drain_secs: f64,
    /// Both.
    pub fan_secs: f64,
    /// `fan_secs / plain_secs`.
    pub fan_ratio: f64,
    /// Jobs of the fan case that ended completed.
    pub fan_completed: usize,
    /// Chains of the chains case.
    pub chains: usize,
    /// Steps of its longest chain.
    pub chain_length: usize,
    /// Inserting the chains workflow.
    pub chains_insert_secs: f64,
    /// Draining it.
    pub chains_drain_secs: f64,
    /// Both.
    pub chains_secs: f64,
    /// `chains_secs / plain_secs`.
    pub chains_ratio: f64,
    /// Jobs of the chains case that ended completed.
    pub chains_completed: usize,
    /// The plain case hand-written on the minimal table with dependencies: insert + drain.
    pub minimal_plain_secs: f64,
    /// The chains case hand-written there.
    pub minimal_chains_secs: f64,
    /// `minimal_chains_secs / minimal_plain_secs`: what the chains shape costs the database
    /// itself.
    pub minimal_chains_ratio: f64,
    /// `chains_secs / minimal_chains_secs`: porter's chains against the hand-written ones.
    pub chains_vs_minimal: f64,
}

impl std::fmt::Display for WorkflowReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "backend {}, {} no-op jobs per case, {} slots",
            self.backend, self.jobs, self.concurrency
        )?;
        writeln!(f, "{}", super::warmed_up(self.warmup_jobs))?;
        writeln!(
            f,
            "{:<30} {:>9} {:>9} {:>9} {:>9}",
            "", "insert", "drain", "total", "vs plain"
        )?;
        let secs = |s: f64| format!("{s:.3} s");
        writeln!(
            f,
            "{:<30} {:>9} {:>9} {:>9}",
            "no dependencies",
            secs(self.plain_insert_secs),
            secs(self.plain_drain_secs),
            secs(self.plain_secs)
        )?;
        writeln!(
            f,
            "{:<30} {:>9} {:>9} {:>9} {:>8.2}x",
            format!("workflow 1 -> {} -> 1", self.jobs.saturating_sub(2)),
            secs(self.fan_insert_secs),
            secs(self.fan_drain_secs),
            secs(self.fan_secs),
            self.fan_ratio
        )?;
        writeln!(
            f,
            "{:<30} {:>9} {:>9} {:>9} {:>8.2}x",
            format!("workflow {} chains of {}", self.chains, self.chain_length),
            secs(self.chains_insert_secs),
            secs(self.chains_drain_secs),
            secs(self.chains_secs),
            self.chains_ratio
        )?;
        writeln!(
            f,
            "hand-written, minimal table: no dependencies {}, {} chains {} ({:.2}x); \
             porter's chains {:.2}x the hand-written",
            secs(self.minimal_plain_secs),
            self.chains,
            secs(self.minimal_chains_secs),
            self.minimal_chains_ratio,
            self.chains_vs_minimal
        )
    }
}

/// One case's figures: insert time, drain time, jobs completed.
struct Timed {
    insert: Duration,
    drain: Duration,
    completed: usize,
}

impl Timed {
    fn total(&self) -> f64 {
        (self.insert + self.drain).as_secs_f64()
    }
}

/// `porter bench --workflow`: see [`WorkflowReport`]. Needs a database without jobs. The
/// chains case has `chains` chains (√`jobs`, rounded, when `None`), from 1 to `jobs`.
pub async fn workflow(
    database_url: &str,
    jobs: usize,
    concurrency: usize,
    chains: Option<usize>,
    progress: bool,
) -> Result<WorkflowReport> {
    if !(WORKFLOW_BENCH_MIN_JOBS..=WORKFLOW_BENCH_MAX_JOBS).contains(&jobs) || concurrency == 0 {
        return Err(Error::invalid(
            "bench",
            format!(
                "--workflow takes {WORKFLOW_BENCH_MIN_JOBS} to {WORKFLOW_BENCH_MAX_JOBS} jobs \
                 (its fan-in step waits for at most {MAX_PARENTS}) and at least 1 slot"
            ),
        ));
    }
    let chains = chains.unwrap_or_else(|| chain_count(jobs));
    if !(1..=jobs).contains(&chains) {
        return Err(Error::invalid(
            "bench",
            format!("--chains takes 1 to {jobs} (the jobs of each case)"),
        ));
    }
    let store = super::open_without_jobs(database_url).await?;
    let client = crate::Client::new(store.clone());
    let mut probe = BenchProbe::open(database_url).await?;
    let bars = Bars { show: progress };
    let noop = |queue: &str| {
        insert_params(
            &Noop {},
            Some(InsertOpts {
                queue: Some(queue.to_string()),
                ..InsertOpts::default()
            }),
        )
    };

    let bar = bars.counter("warm-up, untimed", jobs);
    super::warm_up(&client, &mut probe, jobs, concurrency, &bar).await?;
    bar.finish();

    // Each case: insert (timed), then drain (timed) with a fresh runtime.
    let plain = {
        let bar = bars.counter("no dependencies", jobs);
        let started = Instant::now();
        let params = vec![noop(PLAIN_QUEUE)?; jobs];
        let inserted = client.insert_many_params(params).await?;
        let insert = started.elapsed();
        check_inserted(inserted.len(), jobs)?;
        let (drain, completed) =
            drain(&store, &mut probe, PLAIN_QUEUE, jobs, concurrency, &bar).await?;
        bar.finish();
        super::clear(&client, &mut probe, PLAIN_QUEUE).await?;
        Timed {
            insert,
            drain,
            completed,
        }
    };

    let fan = {
        let bar = bars.counter("fan-out, fan-in", jobs);
        let started = Instant::now();
        let inserted = client.insert_workflow(fan_workflow(jobs)).await?;
        let insert = started.elapsed();
        check_inserted(inserted.steps.len(), jobs)?;
        let (drain, completed) =
            drain(&store, &mut probe, FAN_QUEUE, jobs, concurrency, &bar).await?;
        bar.finish();
        check_order(&mut probe, FAN_QUEUE).await?;
        super::clear(&client, &mut probe, FAN_QUEUE).await?;
        Timed {
            insert,
            drain,
            completed,
        }
    };

    let chains_case = {
        let bar = bars.counter("chains", jobs);
        let started = Instant::now();
        let inserted = client
            .insert_workflow(chains_workflow(jobs, chains))
            .await?;
        let insert = started.elapsed();
        check_inserted(inserted.steps.len(), jobs)?;
        let (drain, completed) =
            drain(&store, &mut probe, CHAINS_QUEUE, jobs, concurrency, &bar).await?;
        bar.finish();
        check_order(&mut probe, CHAINS_QUEUE).await?;
        super::clear(&client, &mut probe, CHAINS_QUEUE).await?;
        Timed {
            insert,
            drain,
            completed,
        }
    };

    let minimal_plain = probe.chains_baseline(jobs, jobs).await?.total_secs();
    let minimal_chains = probe.chains_baseline(jobs, chains).await?.total_secs();
    let plain_secs = plain.total();
    Ok(WorkflowReport {
        backend: store.backend(),
        jobs,
        concurrency,
        warmup_jobs: jobs,
        plain_insert_secs: plain.insert.as_secs_f64(),
        plain_drain_secs: plain.drain.as_secs_f64(),
        plain_secs,
        plain_completed: plain.completed,
        fan_insert_secs: fan.insert.as_secs_f64(),
        fan_drain_secs: fan.drain.as_secs_f64(),
        fan_secs: fan.total(),
        fan_ratio: super::ratio(fan.total(), plain_secs),
        fan_completed: fan.completed,
        chains,
        chain_length: jobs.div_ceil(chains),
        chains_insert_secs: chains_case.insert.as_secs_f64(),
        chains_drain_secs: chains_case.drain.as_secs_f64(),
        chains_secs: chains_case.total(),
        chains_ratio: super::ratio(chains_case.total(), plain_secs),
        chains_completed: chains_case.completed,
        minimal_plain_secs: minimal_plain,
        minimal_chains_secs: minimal_chains,
        minimal_chains_ratio: super::ratio(minimal_chains, minimal_plain),
        chains_vs_minimal: super::ratio(chains_case.total(), minimal_chains),
    })
}

/// Fails the run when a job of the drained `queue` started before a parent of its own ended,
/// read from the rows' times before they are deleted: a drain that broke the order would
/// time less than the order costs.
async fn check_order(probe: &mut BenchProbe, queue: &str) -> Result<()> {
    let early = probe.started_early(queue).await?;
    if early > 0 {
        let jobs = if early == 1 { "job" } else { "jobs" };
        return Err(Error::Database(format!(
            "{early} {jobs} of {queue} started before a parent of its own ended: the figures \
             would not be of the workflow's order"
        )));
    }
    Ok(())
}

fn check_inserted(inserted: usize, jobs: usize) -> Result<()> {
    if inserted != jobs {
        return Err(Error::Database(format!(
            "inserted {inserted} jobs of {jobs}"
        )));
    }
    Ok(())
}

fn step(name: String, queue: &str) -> Step {
    Step::raw(name, Noop::KIND, serde_json::json!({})).opts(InsertOpts {
        queue: Some(queue.to_string()),
        ..InsertOpts::default()
    })
}

/// `root`, then `item-1` .. `item-(jobs-2)` after it, then `report` after all of them.
fn fan_workflow(jobs: usize) -> Workflow {
    let mut w = Workflow::new("bench fan-out, fan-in");
    w.push(step("root".into(), FAN_QUEUE));
    let items: Vec<String> = (1..jobs - 1).map(|i| format!("item-{i}")).collect();
    for name in &items {
        w.push(step(name.clone(), FAN_QUEUE).after(["root"]));
    }
    w.push(step("report".into(), FAN_QUEUE).after(items));
    w
}

/// √jobs chains, rounded, at least 1.
fn chain_count(jobs: usize) -> usize {
    ((jobs as f64).sqrt().round() as usize).max(1)
}

/// Step `i` is in chain `i % chains`, after step `i - chains` (the one before it there):
/// inserted a link of every chain at a time.
fn chains_workflow(jobs: usize, chains: usize) -> Workflow {
    let mut w = Workflow::new("bench chains");
    for i in 0..jobs {
        let s = step(format!("s{i}"), CHAINS_QUEUE);
        w.push(if i >= chains {
            s.after([format!("s{}", i - chains)])
        } else {
            s
        });
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shapes_have_the_jobs_asked_for_and_wait_as_described() {
        let fan = fan_workflow(10).params().unwrap();
        assert_eq!(fan.steps.len(), 10);
        assert!(fan.steps[0].job.depends_on.is_empty());
        assert!(fan.steps[1..9].iter().all(|s| s.job.depends_on.len() == 1));
        assert_eq!(fan.steps[9].job.depends_on.len(), 8);
        assert_eq!(fan.runs().len(), 3);

        assert_eq!(chain_count(10_000), 100);
        let chains = chains_workflow(10_000, 100).params().unwrap();
        assert_eq!(chains.steps.len(), 10_000);
        assert_eq!(
            chains
                .steps
                .iter()
                .filter(|s| s.job.depends_on.is_empty())
                .count(),
            100
        );
        assert_eq!(chains.runs().len(), 100);
        assert_eq!(chain_count(3), 2);
        assert_eq!(chains_workflow(3, 2).params().unwrap().steps.len(), 3);
    }
}
