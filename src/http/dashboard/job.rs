//! `GET /dashboard/jobs/{id}`: one job, whole: its fields, the progress and output its worker
//! recorded, the workflow it is a step of (a link), the jobs it waits for and the jobs waiting for it, args and metadata as pretty
//! JSON, every attempt with what the row records of it, each error with its trace, and the retry and
//! cancel buttons its state allows.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup};

use super::{layout, nav_header, notice, problem_page, readable, time, url_part, AppState};
use crate::job::{JobRow, JobState};
use crate::store::workflow::JobWorkflow;
use crate::store::JobBatch;

/// The job page.
pub(super) async fn page(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(refused) = readable(&state, &headers) {
        return refused;
    }
    let id = match path {
        Ok(Path(id)) => id,
        Err(_) => {
            return problem_page(
                &state,
                StatusCode::BAD_REQUEST,
                "a job id is a whole number, as in /dashboard/jobs/42",
            )
        }
    };
    let detail = match state
        .client
        .get_detail_links(id, Some(LINKS_SHOWN as u32))
        .await
    {
        Ok(Some(detail)) => detail,
        Ok(None) => {
            return problem_page(
                &state,
                StatusCode::NOT_FOUND,
                &format!("no job {id} (it may have been deleted after its retention)"),
            )
        }
        Err(e) => return super::error_page(&state, e),
    };
    let job = &detail.job;
    let workflow = detail.workflow.as_ref();
    let url = format!("/dashboard/jobs/{id}");
    let refresh = state.config.dashboard_refresh.as_secs().max(1);
    let body = html! {
        (nav_header(&state, &headers, &format!("Job {id}")))
        @if let Some(text) = notice(&state, query.as_deref()) {
            p { span.notice #notice { (text) } }
        }
        section #job data-job-id=(job.id) data-state=(job.state.as_str()) {
            (fields(job, workflow, detail.batch.as_ref()))
            div #actions {
                // A running job cannot be retried, nor one that waits (its turn or its parents
                // make it due).
                @if !matches!(job.state, JobState::Running | JobState::Pending) {
                    (button(job, "retry", if job.state.is_final() { "Retry" } else { "Run now" }))
                }
                @if !job.state.is_final() {
                    (button(job, "cancel", "Cancel"))
                }
            }
        }
        section #parents {
            h2 { "Waits for" }
            (links(&detail.parents, detail.parents_total, "It waits for no other job."))
        }
        section #children {
            h2 { "Waited for by" }
            (links(&detail.children, detail.children_total, "No job waits for it."))
        }
        section #progress {
            h2 { "Progress" }
            @match &job.progress {
                Some(p) => pre.json { (pretty(p)) },
                None => p.muted { "No progress recorded." },
            }
        }
        section #output {
            h2 { "Output" }
            @match &job.output {
                Some(o) => pre.json { (pretty(o)) },
                None => p.muted { "No output recorded." },
            }
        }
        section #args {
            h2 { "Args" }
            pre.json { (pretty(&job.args)) }
        }
        section #attempts {
            h2 { "Attempts" }
            (attempts(job))
        }
        section #metadata {
            h2 { "Metadata" }
            pre.json { (pretty(&job.metadata)) }
        }
    };
    Html(layout(&format!("porter: job {id}"), Some((refresh, &url)), body).into_string())
        .into_response()
}

/// Parents or children linked on a job's page at most (a fan-in step may wait for 10,000).
const LINKS_SHOWN: usize = 100;

/// Parents or children: each a link to its page, with its kind and state now; an edge that
/// runs the child whatever the parent's end says so. The first [`LINKS_SHOWN`] (all the page
/// reads), and how many more of the `total`.
fn links(jobs: &[crate::store::JobLink], total: i64, none: &str) -> Markup {
    if jobs.is_empty() {
        return html! { p.muted { (none) } };
    }
    let total = usize::try_from(total).unwrap_or(0).max(jobs.len());
    let more = total.saturating_sub(LINKS_SHOWN);
    html! {
        @if more > 0 {
            p.muted.more-links { "The first " (LINKS_SHOWN) " of " (total) ", and " (more) " more (all of them: porter jobs show)." }
        }
        ul.links {
            @for link in jobs.iter().take(LINKS_SHOWN) {
                li.link data-job-id=(link.id) data-state=(link.state.as_str()) {
                    a href=(format!("/dashboard/jobs/{}", link.id)) { "#" (link.id) }
                    " " (link.kind) " "
                    span.state { (link.state.as_str()) }
                    @if link.after_any {
                        " " span.muted { "(runs whatever it ends as)" }
                    }
                }
            }
        }
    }
}

/// Most bytes of indentation a value is shown with: past it, shown compact. Indented, a value
/// within porter's bounds (127 levels) grew to 128 times its size (33 MB for a 260 KB
/// output), every refresh.
const MAX_INDENTATION: usize = 64 * 1024;

/// `value` indented, or compact when that would add more than [`MAX_INDENTATION`] bytes (the
/// indented form is given up on as soon as it would).
/// The characters the page writes out ([`super::written_out`]) are written out here as JSON
/// writes them (`\u202e`), so that what is shown is JSON still: the page's own spelling
/// (`\u{202e}`) is no JSON reader's. They occur only in strings.
fn pretty(value: &serde_json::Value) -> String {
    let budget = crate::store::json_size(value, usize::MAX) + MAX_INDENTATION;
    let mut out = crate::store::Capped::new(Vec::new(), budget);
    let text = match serde_json::to_writer_pretty(&mut out, value) {
        Ok(()) => String::from_utf8(out.inner).unwrap_or_else(|_| value.to_string()),
        Err(_) => value.to_string(),
    };
    if !text.chars().any(super::written_out) {
        return text;
    }
    let mut shown = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if super::written_out(c) {
            for unit in c.encode_utf16(&mut [0; 2]) {
                shown.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            shown.push(c);
        }
    }
    shown
}

fn fields(job: &JobRow, workflow: Option<&JobWorkflow>, batch: Option<&JobBatch>) -> Markup {
    html! {
        dl.fields {
            dt { "kind" } dd #kind { (job.kind) }
            @if let Some(w) = workflow {
                dt { "workflow" } dd #workflow {
                    "step " (w.step) " of "
                    a href=(format!("/dashboard/workflows/{}", w.id)) data-workflow-id=(w.id) { "workflow " (w.id) ": " (w.name) }
                }
            }
            @if let Some(b) = batch {
                dt { "batch" } dd #batch {
                    (if b.callback { "the callback of " } else { "a member of " })
                    a href=(format!("/dashboard/batches/{}", b.id)) data-batch-id=(b.id) { "batch " (b.id) }
                }
            }
            dt { "queue" } dd #queue {
                @if crate::job::validate_name("queue", &job.queue).is_ok() {
                    a href=(format!("/dashboard/jobs?queue={}", url_part(&job.queue))) { (job.queue) }
                } @else {
                    (job.queue) " " span.muted title=(super::ops::REFUSED_NAME) { "(not a name porter takes)" }
                }
            }
            dt { "state" } dd #state { (job.state.as_str())
                @if let Some(at) = job.metadata.get(crate::job::CANCEL_REQUESTED_AT).and_then(|v| v.as_str()) {
                    " " span.muted { "(cancel requested at " (at) ")" }
                }
            }
            dt { "priority" } dd { (job.priority) }
            dt { "attempt" } dd #attempt { (job.attempt) " of " (job.max_attempts) }
            dt { "created" } dd { (time(Some(job.created_at))) }
            dt { "scheduled" } dd { (time(Some(job.scheduled_at))) }
            dt { "last attempt started" } dd { (time(job.attempted_at)) }
            dt { "last attempt's worker" } dd #worker { (job.attempted_by.as_deref().unwrap_or("")) }
            dt { "finalized" } dd { (time(job.finalized_at)) }
            @if let Some(key) = &job.unique_key {
                dt { "unique key" } dd { (key) }
            }
            @if let Some(key) = &job.concurrency_key {
                dt { "concurrency key" } dd #concurrency-key { (key) }
            }
            @if let Some(key) = &job.sequence_key {
                dt { "sequence" } dd #sequence-key { (key) }
            }
        }
    }
}

/// Every attempt, from what the row records: the error history has each failed attempt's
/// end and error; `attempted_at` and `attempted_by` are the latest attempt's start and worker
/// (earlier attempts' workers are not kept).
/// Recorded attempts listed on a job's page at most, the last ones (`max_attempts` may be up
/// to a million).
const ATTEMPTS_SHOWN: usize = 100;

fn attempts(job: &JobRow) -> Markup {
    if job.attempt == 0 && job.errors.is_empty() {
        return html! { p.muted { "Not attempted yet." } };
    }
    // Attempts given back (a shutdown, a rescue) share a number with the next one; list each
    // recorded event, then the latest attempt if it has no error of its own. A job of many
    // attempts shows its last [`ATTEMPTS_SHOWN`].
    let latest_recorded = job.errors.iter().any(|e| e.attempt == job.attempt);
    let skipped = job.errors.len().saturating_sub(ATTEMPTS_SHOWN);
    html! {
        @if skipped > 0 {
            p.muted #attempts-note { "The last " (ATTEMPTS_SHOWN) " of " (job.errors.len()) " recorded attempts (all of them: porter jobs show)." }
        }
        table {
            thead { tr { th { "attempt" } th { "started" } th { "worker" } th { "ended" } th { "outcome" } } }
            tbody {
                @for (i, e) in job.errors.iter().enumerate().skip(skipped) {
                    @let latest = e.attempt == job.attempt && i + 1 == job.errors.len();
                    tr.attempt data-attempt=(e.attempt) {
                        td.n { (e.attempt) }
                        td { @if latest { (time(job.attempted_at)) } @else { span.muted { "not recorded" } } }
                        td { @if latest { (job.attempted_by.as_deref().unwrap_or("")) } @else { span.muted { "not recorded" } } }
                        td { (time(Some(e.at))) }
                        td {
                            pre.error { (e.error) }
                            @if let Some(trace) = &e.trace {
                                details { summary { "trace" } pre.trace { (trace) } }
                            }
                        }
                    }
                }
                @if !latest_recorded && job.attempt > 0 {
                    tr.attempt data-attempt=(job.attempt) {
                        td.n { (job.attempt) }
                        td { (time(job.attempted_at)) }
                        td { (job.attempted_by.as_deref().unwrap_or("")) }
                        td { (time(job.finalized_at)) }
                        td { (outcome(job.state)) }
                    }
                }
            }
        }
    }
}

fn outcome(state: JobState) -> &'static str {
    match state {
        JobState::Running => "running",
        JobState::Completed => "completed",
        JobState::Cancelled => "cancelled",
        JobState::Discarded => "discarded",
        // Pending: a finished job of a busy sequence that was retried waits its turn.
        JobState::Available | JobState::Scheduled | JobState::Retryable | JobState::Pending => {
            "given back"
        }
    }
}

fn button(job: &JobRow, verb: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action=(format!("/dashboard/jobs/{}/{verb}", job.id)) {
            input type="hidden" name="from" value="job";
            button type="submit" class=(verb) data-job-id=(job.id) { (label) }
        }
    }
}
