//! `porter batches list|show`.

use clap::Subcommand;

use super::{open_client, output, GlobalArgs};
use crate::batch::BatchRow;
use crate::error::Error;
use crate::http::listing::{batches_page, LIST_BYTES_BUDGET};
use crate::job::JobState;

/// `porter batches ...`
#[derive(Debug, Subcommand)]
pub enum BatchesCommand {
    /// Batches, newest first: members by state, and the callback's state.
    List {
        /// At most this many (default 100, at most 10000).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: Option<u32>,
        /// Only batches with an id below this: the next page.
        #[arg(long, value_name = "ID")]
        before_id: Option<i64>,
        /// Print {"batches": [...], "next_before_id": ID | null} as JSON (the shape of GET
        /// /admin/batches).
        #[arg(long)]
        json: bool,
    },
    /// One batch: its members by state and its callback.
    Show {
        /// Batch id.
        id: i64,
        /// Print it as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn counts(b: &BatchRow) -> String {
    if b.counts.is_empty() {
        return "-".to_string();
    }
    JobState::ALL
        .iter()
        .filter_map(|s| b.counts.get(s).map(|n| format!("{s} {n}")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn callback(b: &BatchRow) -> String {
    match (b.callback_id, &b.callback_kind, b.callback_state) {
        (Some(id), Some(kind), Some(state)) => format!("{id} ({}, {state})", output::field(kind)),
        (Some(id), _, _) => format!("{id} (gone)"),
        _ => "-".to_string(),
    }
}

pub(super) async fn run(g: &GlobalArgs, cmd: BatchesCommand) -> anyhow::Result<()> {
    match cmd {
        BatchesCommand::List {
            limit,
            before_id,
            json,
        } => {
            let client = open_client(g).await?;
            let (list, next_before_id) =
                batches_page(&client, limit, LIST_BYTES_BUDGET, before_id).await?;
            if json {
                return output::print_json(&serde_json::json!({
                    "batches": list,
                    "next_before_id": next_before_id,
                }));
            }
            if list.is_empty() {
                return output::print("no batches\n");
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|b| {
                    vec![
                        b.id.to_string(),
                        output::time(Some(b.created_at)),
                        b.mode().to_string(),
                        b.members.to_string(),
                        counts(b),
                        callback(b),
                    ]
                })
                .collect();
            let mut text = output::table(
                &["ID", "CREATED (UTC)", "MODE", "JOBS", "STATES", "CALLBACK"],
                &rows,
            );
            let flags: Vec<_> = limit
                .map(|n| ("limit", n.to_string()))
                .into_iter()
                .collect();
            text.push_str(&output::more(
                g,
                "porter batches list",
                &flags,
                next_before_id,
            ));
            output::print(&text)
        }
        BatchesCommand::Show { id, json } => {
            let b = open_client(g)
                .await?
                .batch(id)
                .await?
                .ok_or_else(|| Error::not_found("batch", id))?;
            if json {
                return output::print_json(&b);
            }
            output::print(&format!(
                "id:        {}\ncreated:   {}\nmode:      {}\njobs:      {}\nstates:    {}\ncallback:  {}\n",
                b.id,
                output::time(Some(b.created_at)),
                b.mode(),
                b.members,
                counts(&b),
                callback(&b),
            ))
        }
    }
}
