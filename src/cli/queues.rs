//! `porter queues list|pause|resume` and `porter stats`.

use clap::{Args, Subcommand};
use serde_json::json;

use super::{open_client, output, usage, GlobalArgs};
use crate::job::{validate_name, JobState};
use crate::store::StateCounts;

/// `porter queues ...`
#[derive(Debug, Subcommand)]
pub enum QueuesCommand {
    /// Queues (those with jobs or a pause record), whether paused, and their job counts.
    List {
        /// Print {"queues": [{"name","paused","paused_at"}]} as JSON (the shape of GET /admin/queues).
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
}

/// `porter stats`
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print {"total": {state: n, ...}, "queues": {queue: {state: n, ...}}} as JSON.
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
                let queues: Vec<_> = queues
                    .iter()
                    .map(|q| json!({ "name": q.name, "paused": q.paused_at.is_some(), "paused_at": q.paused_at }))
                    .collect();
                return output::print_json(&json!({ "queues": queues }));
            }
            if queues.is_empty() {
                return output::print("no queues yet (a queue appears with its first job)\n");
            }
            let counts = client.counts().await?;
            let rows: Vec<Vec<String>> = queues
                .iter()
                .map(|q| {
                    let mut row = vec![
                        q.name.clone(),
                        if q.paused_at.is_some() {
                            "paused"
                        } else {
                            "active"
                        }
                        .to_string(),
                    ];
                    row.extend(count_cells(counts.queues.get(&q.name)));
                    row
                })
                .collect();
            output::print(&output::table(&state_headers(&["QUEUE", "STATUS"]), &rows))
        }
        QueuesCommand::Pause { queue, create } => {
            usage(validate_name("queue", &queue))?;
            let client = open_client(g).await?;
            if !create && !client.queue_list().await?.iter().any(|q| q.name == queue) {
                anyhow::bail!(
                    "no queue {queue:?} (no jobs, never paused); check the name (porter queues list), or pass --create to pause it before its first job"
                );
            }
            client.queue_pause(&queue).await?;
            output::print(&format!("queue {queue} paused\n"))
        }
        QueuesCommand::Resume { queue } => {
            usage(validate_name("queue", &queue))?;
            open_client(g).await?.queue_resume(&queue).await?;
            output::print(&format!("queue {queue} resumed\n"))
        }
    }
}

pub(super) async fn stats(g: &GlobalArgs, a: StatsArgs) -> anyhow::Result<()> {
    let counts = open_client(g).await?.counts().await?;
    if a.json {
        return output::print_json(&counts);
    }
    let mut rows: Vec<Vec<String>> = counts
        .queues
        .iter()
        .map(|(name, c)| {
            let mut row = vec![name.clone()];
            row.extend(count_cells(Some(c)));
            row
        })
        .collect();
    let mut total = vec!["(total)".to_string()];
    total.extend(count_cells(Some(&counts.total)));
    rows.push(total);
    output::print(&output::table(&state_headers(&["QUEUE"]), &rows))
}
