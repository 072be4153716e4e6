//! `porter queues list|pause|resume|limit` and `porter stats`.

use clap::{ArgGroup, Args, Subcommand};
use serde_json::json;

use super::{open_client, output, usage, GlobalArgs};
use crate::job::{validate_name, JobState};
use crate::store::limits::MAX_LIMIT;
use crate::store::{QueueLimitParams, QueueLimits, QueueRow, Rate, StateCounts, UnservedRow};

/// `porter queues ...`
#[derive(Debug, Subcommand)]
pub enum QueuesCommand {
    /// Queues (those with jobs or a pause record), whether paused, and their job counts.
    List {
        /// Print {"queues": [{"name","paused","paused_at","limits"}], "next_after": null} as JSON
        /// (the shape of GET /admin/queues, every queue on one page); limits are
        /// {"concurrency","per_key","rate","rate_per_key"}, a rate as {"limit","period_ms"},
        /// null where there is none.
        #[arg(long)]
        json: bool,
    },
    /// Stop workers from claiming the queue's jobs (running jobs finish). A queue with no
    /// jobs and no record is refused (a typo would pause a queue nobody uses) unless --create.
    Pause {
        /// Queue name.
        queue: String,
        /// Pause a queue that has no jobs yet (its first jobs will wait).
        #[arg(long)]
        create: bool,
    },
    /// Let workers claim the queue's jobs again.
    Resume {
        /// Queue name.
        queue: String,
    },
    /// Limit the queue across every worker process: running jobs (in all, per concurrency
    /// key) and starts per time window (in all, per key). Limits given replace those of the
    /// same name; others stay. Prints the queue's limits.
    Limit(LimitArgs),
}

/// `porter queues limit QUEUE ...`
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("limits").required(true).multiple(true)
    .args(["concurrency", "per_key", "rate", "rate_per_key", "clear"])))]
pub struct LimitArgs {
    /// Queue name.
    queue: String,
    /// At most N running jobs of the queue, across every process.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=MAX_LIMIT as i64))]
    concurrency: Option<u32>,
    /// At most N running jobs per concurrency key (`enqueue --concurrency-key`); jobs of other
    /// keys keep running.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=MAX_LIMIT as i64))]
    per_key: Option<u32>,
    /// At most N starts in any window of DURATION (20/1s, 1000/1h), across every process.
    #[arg(long, value_name = "N/DURATION", value_parser = parse_rate)]
    rate: Option<Rate>,
    /// At most N starts per concurrency key in any window of DURATION.
    #[arg(long, value_name = "N/DURATION", value_parser = parse_rate)]
    rate_per_key: Option<Rate>,
    /// Remove every limit of the queue (before setting any given with it).
    #[arg(long)]
    clear: bool,
    /// Print the queue as JSON (one element of `queues list --json`).
    #[arg(long)]
    json: bool,
}

fn parse_rate(text: &str) -> Result<Rate, String> {
    Rate::parse("rate", text).map_err(|e| e.to_string())
}

/// A queue as `queues list --json` and GET /admin/queues show it.
fn queue_json(q: &QueueRow) -> serde_json::Value {
    json!({ "name": q.name, "paused": q.paused_at.is_some(), "paused_at": q.paused_at, "limits": q.limits })
}

/// `porter stats`
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print {"total": {state: n, ...}, "queues": {queue: {state: n, ...}}, "unserved":
    /// {queue: {kind: n}}} as JSON ("unserved": jobs due to run that no live worker serves).
    #[arg(long)]
    json: bool,
}

fn count_cells(counts: Option<&StateCounts>) -> Vec<String> {
    JobState::ALL
        .iter()
        .map(|s| {
            counts
                .and_then(|c| c.get(s))
                .copied()
                .unwrap_or(0)
                .to_string()
        })
        .collect()
}

fn state_headers<'a>(first: &'a [&'a str]) -> Vec<&'a str> {
    let mut headers = first.to_vec();
    headers.extend(JobState::ALL.iter().map(|s| s.as_str()));
    headers
}

pub(super) async fn run(g: &GlobalArgs, cmd: QueuesCommand) -> anyhow::Result<()> {
    match cmd {
        QueuesCommand::List { json } => {
            let client = open_client(g).await?;
            let queues = client.queue_list().await?;
            if json {
                let queues: Vec<_> = queues.iter().map(queue_json).collect();
                // Every queue: no page follows (`next_after` null, as GET /admin/queues
                // answers its last page).
                return output::print_json(&json!({ "queues": queues, "next_after": null }));
            }
            if queues.is_empty() {
                return output::print("no queues yet (a queue appears with its first job)\n");
            }
            let counts = client.counts().await?;
            let rows: Vec<Vec<String>> = queues
                .iter()
                .map(|q| {
                    let mut row = vec![
                        output::name(&q.name, super::jobs::NAME_WIDTH),
                        if q.paused_at.is_some() {
                            "paused"
                        } else {
                            "active"
                        }
                        .to_string(),
                    ];
                    row.extend(count_cells(counts.queues.get(&q.name)));
                    row.push(q.limits.to_string());
                    row
                })
                .collect();
            let mut headers = state_headers(&["QUEUE", "STATUS"]);
            headers.push("LIMITS");
            output::print(&output::table(&headers, &rows))
        }
        QueuesCommand::Pause { queue, create } => {
            usage(validate_name("queue", &queue))?;
            let client = open_client(g).await?;
            if !create && !known(&client, &queue).await? {
                anyhow::bail!(
                    "no queue {queue:?} (no jobs, never paused); check the name (porter queues list), or pass --create to pause it before its first job"
                );
            }
            client.queue_pause(&queue).await?;
            output::print(&format!("queue {queue} paused\n"))
        }
        QueuesCommand::Limit(a) => {
            usage(validate_name("queue", &a.queue))?;
            let row = open_client(g)
                .await?
                .queue_limit(QueueLimitParams {
                    queue: a.queue.clone(),
                    clear: a.clear,
                    set: QueueLimits {
                        concurrency: a.concurrency,
                        per_key: a.per_key,
                        rate: a.rate,
                        rate_per_key: a.rate_per_key,
                    },
                })
                .await?;
            if a.json {
                return output::print_json(&queue_json(&row));
            }
            output::print(&format!("queue {} limits: {}\n", row.name, row.limits))
        }
        QueuesCommand::Resume { queue } => {
            usage(validate_name("queue", &queue))?;
            let client = open_client(g).await?;
            if !known(&client, &queue).await? {
                anyhow::bail!(
                    "no queue {queue:?} (no jobs, never paused); check the name (porter queues list)"
                );
            }
            client.queue_resume(&queue).await?;
            output::print(&format!("queue {queue} resumed\n"))
        }
    }
}

/// Whether porter knows the queue: it has jobs, or a record (paused, or limits set).
async fn known(client: &crate::Client, queue: &str) -> anyhow::Result<bool> {
    Ok(client.queue_list().await?.iter().any(|q| q.name == queue))
}

pub(super) async fn stats(g: &GlobalArgs, a: StatsArgs) -> anyhow::Result<()> {
    let stats = open_client(g).await?.stats().await?;
    if a.json {
        return output::print_json(&stats);
    }
    let counts = &stats.counts;
    let mut rows: Vec<Vec<String>> = counts
        .queues
        .iter()
        .map(|(name, c)| {
            let mut row = vec![output::name(name, super::jobs::NAME_WIDTH)];
            row.extend(count_cells(Some(c)));
            row
        })
        .collect();
    let mut total = vec!["(total)".to_string()];
    total.extend(count_cells(Some(&counts.total)));
    rows.push(total);
    let mut text = output::table(&state_headers(&["QUEUE"]), &rows);
    // Jobs nobody will run (issue 17.7): one line per queue and kind, after the table.
    for (queue, kinds) in &stats.unserved {
        for (kind, count) in kinds {
            let line = UnservedRow {
                queue: output::name(queue, super::jobs::NAME_WIDTH),
                kind: output::name(kind, super::jobs::NAME_WIDTH),
                count: *count,
            };
            text.push_str(&format!("{}\n", output::field(&line.to_string())));
        }
    }
    output::print(&text)
}
