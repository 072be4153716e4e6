//! `porter jobs list|show|retry|cancel` and `porter list-failed-jobs`.

use clap::{Args, Subcommand};

use super::{open_client, output, usage, GlobalArgs};
use crate::error::Error;
use crate::http::listing::{list_jobs, LIST_BYTES_BUDGET};
use crate::job::{validate_name, JobRow, JobState};
use crate::store::JobListParams;

/// `porter jobs ...`
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Jobs, newest first.
    List(ListArgs),
    /// One job with its args and error history.
    Show {
        /// Job id.
        id: i64,
        /// Print the job row as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make a job that is not running available again now (its history is kept).
    Retry {
        /// Job id.
        id: i64,
    },
    /// Cancel a job that has not finished.
    Cancel {
        /// Job id.
        id: i64,
    },
}

/// `porter jobs list`
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only jobs in this state (repeat, or separate with commas): available, scheduled,
    /// running, retryable, completed, cancelled, discarded.
    #[arg(long = "state", value_name = "STATE", value_delimiter = ',', value_parser = parse_state)]
    states: Vec<JobState>,
    /// Only this kind.
    #[arg(long)]
    kind: Option<String>,
    /// Only this queue.
    #[arg(long)]
    queue: Option<String>,
    /// At most this many (default 100, at most 10000; a page also stops at 4 MiB).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    limit: Option<u32>,
    /// Only jobs with an id below this: the next page (the `next_before_id` a page printed).
    #[arg(long, value_name = "ID")]
    before_id: Option<i64>,
    /// Print {"jobs": [...], "next_before_id": ...} as JSON (the shape of GET /admin/jobs;
    /// large args are cut to {"truncated": true, "bytes": N}: `jobs show` has them whole).
    #[arg(long)]
    json: bool,
}

/// `porter list-failed-jobs`
#[derive(Debug, Args)]
pub struct FailedArgs {
    /// At most this many (default 100, at most 10000; a page also stops at 4 MiB).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    limit: Option<u32>,
    /// Only jobs with an id below this: the next page (the `next_before_id` a page printed).
    #[arg(long, value_name = "ID")]
    before_id: Option<i64>,
    /// Print {"jobs": [...], "next_before_id": ...} as JSON (the shape of GET /admin/failed).
    #[arg(long)]
    json: bool,
}

fn parse_state(text: &str) -> Result<JobState, String> {
    text.trim().parse().map_err(|e: Error| e.to_string())
}

/// Widest kind or queue cell: a valid name's length. One another program wrote longer is cut
/// (`jobs show` has it whole): a kind of 100,000 characters padded every row of the table to
/// its width (review of 6 Dec).
pub(super) const NAME_WIDTH: usize = 64;

/// How many of a job's parents and of its children `jobs show` names (`--json` has all).
const SHOW_LINKS: u32 = 1_000;

/// Width of the error column in tables.
const ERROR_WIDTH: usize = 80;

fn attempts(job: &JobRow) -> String {
    format!("{}/{}", job.attempt, job.max_attempts)
}

/// A column of a job table: its header and how a job fills it.
type Column = (&'static str, fn(&JobRow) -> String);

/// A table of jobs: ID, KIND, QUEUE, the given columns, and LAST ERROR (on one line).
fn jobs_table(jobs: &[JobRow], columns: &[Column]) -> String {
    let mut headers = vec!["ID", "KIND", "QUEUE"];
    headers.extend(columns.iter().map(|(h, _)| *h));
    headers.push("LAST ERROR");
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            let mut row = vec![
                j.id.to_string(),
                output::name(&j.kind, NAME_WIDTH),
                output::name(&j.queue, NAME_WIDTH),
            ];
            row.extend(columns.iter().map(|(_, cell)| cell(j)));
            row.push(last_error(j));
            row
        })
        .collect();
    output::table(&headers, &rows)
}

fn last_error(job: &JobRow) -> String {
    job.last_error()
        .map(|e| output::one_line(&e.error, ERROR_WIDTH))
        .unwrap_or_else(|| "-".to_string())
}

pub(super) async fn run(g: &GlobalArgs, cmd: JobsCommand) -> anyhow::Result<()> {
    match cmd {
        JobsCommand::List(a) => {
            let mut flags = Vec::new();
            if !a.states.is_empty() {
                let states: Vec<String> = a.states.iter().map(|s| s.to_string()).collect();
                flags.push(("state", states.join(",")));
            }
            flags.extend(a.kind.clone().map(|k| ("kind", k)));
            flags.extend(a.queue.clone().map(|q| ("queue", q)));
            flags.extend(a.limit.map(|n| ("limit", n.to_string())));
            let mut params = JobListParams {
                states: a.states,
                limit: a.limit,
                before_id: a.before_id,
                ..Default::default()
            };
            if let Some(kind) = a.kind {
                usage(validate_name("kind", &kind))?;
                params.kind = Some(kind);
            }
            if let Some(queue) = a.queue {
                usage(validate_name("queue", &queue))?;
                params.queue = Some(queue);
            }
            let client = open_client(g).await?;
            let page = list_jobs(&client, params, LIST_BYTES_BUDGET).await?;
            if a.json {
                return output::print_json(&page);
            }
            if page.jobs.is_empty() {
                return output::print("no jobs\n");
            }
            let mut text = jobs_table(
                &page.jobs,
                &[
                    ("STATE", |j| j.state.to_string()),
                    ("ATTEMPTS", attempts),
                    ("PRIORITY", |j| j.priority.to_string()),
                    ("SCHEDULED (UTC)", |j| output::time(Some(j.scheduled_at))),
                ],
            );
            text.push_str(&output::more(
                g,
                "porter jobs list",
                &flags,
                page.next_before_id,
            ));
            output::print(&text)
        }
        JobsCommand::Show { id, json } => {
            let client = open_client(g).await?;
            // --json: every parent and child. The human view names the first SHOW_LINKS of each
            // and counts the rest: it read and printed every one, a root of 1,000,000 children
            // on one line of tens of MB (review of 6 Dec).
            let links = (!json).then_some(SHOW_LINKS);
            let job = client
                .get_detail_links(id, links)
                .await?
                .ok_or_else(|| Error::not_found("job", id))?;
            if json {
                return output::print_json(&job);
            }
            output::print(&show(&job))
        }
        JobsCommand::Retry { id } => {
            let job = open_client(g).await?.retry(id).await?;
            output::print(&format!(
                "job {} is {} (attempt {} of {} so far)\n",
                job.id, job.state, job.attempt, job.max_attempts
            ))
        }
        JobsCommand::Cancel { id } => {
            let job = open_client(g).await?.cancel(id).await?;
            if job.state == JobState::Running {
                return output::print(&format!(
                    "job {} is running; cancel requested: its worker stops it and records it cancelled\n",
                    job.id
                ));
            }
            output::print(&format!("job {} is {}\n", job.id, job.state))
        }
    }
}

/// The human view of one job.
fn show(detail: &crate::client::JobDetail) -> String {
    let job = &detail.job;
    let opt = |v: &Option<String>| v.as_deref().map_or_else(|| "-".to_string(), output::field);
    let mut text = format!(
        "id:           {}\nkind:         {}\nqueue:        {}\nstate:        {}\npriority:     {}\n\
         attempts:     {} of {}\ncreated:      {}\nscheduled:    {}\nattempted:    {}\nfinalized:    {}\n\
         attempted by: {}\nunique key:   {}\nargs:         {}\nmetadata:     {}\n",
        job.id,
        output::field(&job.kind),
        output::field(&job.queue),
        job.state,
        job.priority,
        job.attempt,
        job.max_attempts,
        output::time(Some(job.created_at)),
        output::time(Some(job.scheduled_at)),
        output::time(job.attempted_at),
        output::time(job.finalized_at),
        opt(&job.attempted_by),
        opt(&job.unique_key),
        output::field(&job.args.to_string()),
        output::field(&job.metadata.to_string()),
    );
    let recorded = |v: &Option<serde_json::Value>| {
        v.as_ref()
            .map_or_else(|| "-".to_string(), |v| output::field(&v.to_string()))
    };
    text.push_str(&format!("progress:     {}\n", recorded(&job.progress)));
    text.push_str(&format!("output:       {}\n", recorded(&job.output)));
    text.push_str(&format!("sequence:     {}\n", opt(&job.sequence_key)));
    text.push_str(&format!("concurrency:  {}\n", opt(&job.concurrency_key)));
    let links = |links: &[crate::store::JobLink], total: i64| {
        if links.is_empty() {
            return "none".to_string();
        }
        let mut named = links
            .iter()
            .map(|l| {
                let any = if l.after_any { ", after any" } else { "" };
                format!(
                    "{} ({}, {}{any})",
                    l.id,
                    output::name(&l.kind, NAME_WIDTH),
                    l.state
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let more = total - links.len() as i64;
        if more > 0 {
            named.push_str(&format!(", … and {more} more (--json lists every one)"));
        }
        named
    };
    text.push_str(&format!(
        "parents:      {}\n",
        links(&detail.parents, detail.parents_total)
    ));
    text.push_str(&format!(
        "children:     {}\n",
        links(&detail.children, detail.children_total)
    ));
    let workflow = detail.workflow.as_ref().map_or_else(
        || "-".to_string(),
        |w| {
            format!(
                "{} ({}), step {}",
                w.id,
                output::field(&w.name),
                output::field(&w.step)
            )
        },
    );
    text.push_str(&format!("workflow:     {workflow}\n"));
    let batch = detail.batch.as_ref().map_or_else(
        || "-".to_string(),
        |b| {
            let role = if b.callback {
                "its callback"
            } else {
                "a member"
            };
            format!("{} ({role})", b.id)
        },
    );
    text.push_str(&format!("batch:        {batch}\n"));
    // What another program wrote in the row and porter could not read (placeholders above).
    if let Some(why) = &job.unreadable {
        text.push_str(&format!("unreadable:   {}\n", output::field(why)));
    }
    if job.errors.is_empty() {
        text.push_str("errors:       none\n");
    } else {
        text.push_str("errors:\n");
        for e in &job.errors {
            // An error of several lines keeps them, indented under its entry as a trace is:
            // at the margin, a line of it could pass for an entry of its own.
            let mut lines = e.error.lines();
            let first = output::printable(lines.next().unwrap_or(""));
            text.push_str(&format!(
                "  attempt {} at {}: {first}\n",
                e.attempt,
                output::time(Some(e.at))
            ));
            let trace = e.trace.as_deref().map(str::lines).into_iter().flatten();
            for line in lines.chain(trace) {
                text.push_str(&format!("      {}\n", output::printable(line)));
            }
        }
    }
    text
}

pub(super) async fn failed(g: &GlobalArgs, a: FailedArgs) -> anyhow::Result<()> {
    let client = open_client(g).await?;
    let params = JobListParams {
        states: vec![JobState::Discarded],
        limit: a.limit,
        before_id: a.before_id,
        ..Default::default()
    };
    let page = list_jobs(&client, params, LIST_BYTES_BUDGET).await?;
    if a.json {
        return output::print_json(&page);
    }
    if page.jobs.is_empty() {
        return output::print("no failed jobs\n");
    }
    let mut text = jobs_table(
        &page.jobs,
        &[
            ("ATTEMPTS", attempts),
            ("FAILED AT (UTC)", |j| output::time(j.finalized_at)),
        ],
    );
    let flags: Vec<_> = a
        .limit
        .map(|n| ("limit", n.to_string()))
        .into_iter()
        .collect();
    text.push_str(&output::more(
        g,
        "porter list-failed-jobs",
        &flags,
        page.next_before_id,
    ));
    output::print(&text)
}
