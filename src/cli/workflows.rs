//! `porter workflows list|show|cancel`.

use clap::Subcommand;

use super::{open_client, output, GlobalArgs};
use crate::error::Error;
use crate::http::listing::{workflows_page, LIST_BYTES_BUDGET};
use crate::job::JobState;
use crate::store::{StepPage, StepParents};
use crate::workflow::{WorkflowDetail, WorkflowRow};

/// `porter workflows ...`
#[derive(Debug, Subcommand)]
pub enum WorkflowsCommand {
    /// Workflows, newest first, with their steps' counts by state.
    List {
        /// At most this many (default 100, at most 10000).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: Option<u32>,
        /// Only workflows with an id below this: the next page.
        #[arg(long, value_name = "ID")]
        before_id: Option<i64>,
        /// Print {"workflows": [...], "next_before_id": ID | null} as JSON (the shape of GET
        /// /admin/workflows).
        #[arg(long)]
        json: bool,
    },
    /// One workflow with its steps: job, state, and the steps each waits for.
    Show {
        /// Workflow id.
        id: i64,
        /// Print it as JSON (the shape of GET /admin/workflows/{id}).
        #[arg(long)]
        json: bool,
    },
    /// Cancel a workflow's unfinished steps; running steps are asked to stop.
    Cancel {
        /// Workflow id.
        id: i64,
    },
}

/// The counts of a workflow as one cell: `completed 2, pending 1`.
fn counts(w: &WorkflowRow) -> String {
    if w.counts.is_empty() {
        return "-".to_string();
    }
    JobState::ALL
        .iter()
        .filter_map(|s| w.counts.get(s).map(|n| format!("{s} {n}")))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) async fn run(g: &GlobalArgs, cmd: WorkflowsCommand) -> anyhow::Result<()> {
    match cmd {
        WorkflowsCommand::List {
            limit,
            before_id,
            json,
        } => {
            let client = open_client(g).await?;
            let (list, next_before_id) =
                workflows_page(&client, limit, LIST_BYTES_BUDGET, before_id).await?;
            if json {
                return output::print_json(&serde_json::json!({
                    "workflows": list,
                    "next_before_id": next_before_id,
                }));
            }
            if list.is_empty() {
                return output::print("no workflows\n");
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|w| {
                    vec![
                        w.id.to_string(),
                        output::name(&w.name, 40),
                        output::time(Some(w.created_at)),
                        w.total.to_string(),
                        counts(w),
                    ]
                })
                .collect();
            let mut text =
                output::table(&["ID", "NAME", "CREATED (UTC)", "STEPS", "STATES"], &rows);
            let flags: Vec<_> = limit
                .map(|n| ("limit", n.to_string()))
                .into_iter()
                .collect();
            text.push_str(&output::more(
                g,
                "porter workflows list",
                &flags,
                next_before_id,
            ));
            output::print(&text)
        }
        WorkflowsCommand::Show { id, json } => {
            let client = open_client(g).await?;
            let not_found = || Error::not_found("workflow", id);
            if json {
                let wf = client.workflow(id).await?.ok_or_else(not_found)?;
                return output::print_json(&wf);
            }
            // The table names what fits in a cell of each step's parents, and counts the rest:
            // it reads no more (1,000 steps each after the same 10,000 jobs read 10,000,000
            // names for cells of 80 characters: review of 6 Dec).
            let page = StepPage {
                parents: StepParents::First(AFTER_PARENTS),
                ..StepPage::default()
            };
            let wf = client
                .workflow_page(id, page)
                .await?
                .ok_or_else(not_found)?;
            output::print(&show(&wf))
        }
        WorkflowsCommand::Cancel { id } => {
            let out = open_client(g).await?.cancel_workflow(id).await?;
            output::print(&format!(
                "workflow {}: {} steps cancelled, {} running steps asked to stop\n",
                out.id, out.cancelled, out.cancel_requested
            ))
        }
    }
}

/// Most characters of a step's AFTER cell taken by its parents' names, past the first.
const AFTER_WIDTH: usize = 80;

/// How many of a step's parents the table reads: more than fit in [`AFTER_WIDTH`] (a name
/// takes a character at least, and its separator two).
const AFTER_PARENTS: u32 = AFTER_WIDTH as u32 / 3 + 2;

/// The parents a step waits for (the first of them, `total` in all), each name whole, as many
/// as fit in [`AFTER_WIDTH`] (the first always), then how many more there are: a fan-in step
/// may wait for thousands.
fn after_cell(after: &[String], total: usize) -> String {
    if after.is_empty() {
        return "-".to_string();
    }
    let mut cell = String::new();
    let mut named = 0;
    for (i, parent) in after.iter().enumerate() {
        let parent = output::field(parent);
        if i > 0 && cell.chars().count() + 2 + parent.chars().count() > AFTER_WIDTH {
            break;
        }
        if i > 0 {
            cell.push_str(", ");
        }
        cell.push_str(&parent);
        named += 1;
    }
    if total > named {
        cell.push_str(&format!(", … and {} more", total - named));
    }
    cell
}

/// The human view of one workflow.
fn show(wf: &WorkflowDetail) -> String {
    let w = &wf.workflow;
    let mut text = format!(
        "id:       {}\nname:     {}\ncreated:  {}\nsteps:    {}\nstates:   {}\n\n",
        w.id,
        output::field(&w.name),
        output::time(Some(w.created_at)),
        w.total,
        counts(w),
    );
    let rows: Vec<Vec<String>> = wf
        .steps
        .iter()
        .map(|s| {
            vec![
                output::field(&s.step),
                s.job_id.to_string(),
                output::name(&s.kind, super::jobs::NAME_WIDTH),
                s.state.to_string(),
                output::time(s.finalized_at),
                after_cell(
                    &s.after,
                    s.parents_total.map_or(s.after.len(), |n| n as usize),
                ),
            ]
        })
        .collect();
    text.push_str(&output::table(
        &["STEP", "JOB", "KIND", "STATE", "FINALIZED (UTC)", "AFTER"],
        &rows,
    ));
    text
}
