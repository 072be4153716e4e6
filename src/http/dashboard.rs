//! The dashboard at `/`: server-rendered HTML (maud escapes every value; names in links are
//! percent-encoded as well), no JavaScript, no build step. The overview shows job counts by queue and state, the jobs due to run that no
//! live worker serves (when there are any), the last hour's chart ([`chart`]), the discarded
//! jobs with their last error, and the unfinished jobs, with retry and cancel buttons; every
//! page but the jobs page (whose filter form a reload would empty) reloads itself every few
//! seconds ([`HttpConfig::dashboard_refresh`](super::HttpConfig::dashboard_refresh)). The
//! other pages,
//! linked from every page's top bar: one job (`/dashboard/jobs/{id}`), jobs with filters,
//! search, pages and bulk actions (`/dashboard/jobs`), queues with pause and resume
//! (`/dashboard/queues`), workers (`/dashboard/workers`), periodic schedules
//! (`/dashboard/periodic`), workflows, each drawn as a graph of its steps
//! (`/dashboard/workflows`), and batches with their members' states and callback
//! (`/dashboard/batches`). Their data comes through the [`Client`](crate::Client), as an
//! application's would.
//!
//! # Actions and the admin token
//! The buttons are plain HTML forms posting to `POST /dashboard/jobs/{id}/retry` and
//! `POST /dashboard/jobs/{id}/cancel` (answered `303 See Other` back to `/`, or to the job's
//! page with `from=job`), `POST /dashboard/jobs/bulk`,
//! `POST /dashboard/queues/{name}/pause|resume` and `POST /dashboard/workflows/{id}/cancel`. Every one of them goes through the same
//! checks below (origin, then token).
//!
//! When `PORTER_ADMIN_TOKEN` is set, an action needs the token, taken from any of:
//! * the `porter_admin_token` cookie, which `GET /dashboard/login` (a form) sets for a browser:
//!   `HttpOnly`, `SameSite=Strict`, for the browser session; `POST /dashboard/logout` clears it;
//! * a `token` form field (for scripts: `curl -d token=... .../dashboard/jobs/5/retry`);
//! * an `Authorization: Bearer` header.
//!
//! With a token set, *reading* the dashboard needs it too (the cookie or a bearer header): the
//! page shows job kinds, queues and error texts, which can hold secrets. Without it, `GET /`
//! answers 401 with the login form and no job data. The login page itself stays open.
//!
//! An action posted from another origin (its `Origin` header names another host than `Host`)
//! is refused with 403 (by the guard every route has, see [`crate::http`]), so a foreign page
//! cannot drive the buttons of a dashboard on loopback.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::auth::{self, TOKEN_COOKIE};
use super::{listing, AppState};
use crate::error::Error;
use crate::job::{validate_name, JobRow, JobState};
use crate::store::JobListParams;

/// Queues shown on the overview, the first by name; the queues page shows them all, a page at
/// a time (`ops::QUEUES_PAGE`).
const QUEUES_SHOWN: u32 = 50;

/// Pairs of queue and kind shown under "Jobs nobody will run", the first by queue and kind:
/// any caller of the admin API can name a new queue with each job.
const UNSERVED_SHOWN: usize = 50;

/// Discarded and unfinished jobs shown, each.
pub const JOBS_SHOWN: u32 = 25;
/// Longest error text shown (the full history is in `porter jobs show`).
const ERROR_SHOWN: usize = 2000;

mod batch;
pub mod chart;
mod graph;
mod job;
mod jobs;
mod ops;
mod workflow;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(page))
        .route("/dashboard/jobs", get(jobs::page))
        .route("/dashboard/jobs/bulk", get(jobs::confirm).post(jobs::run))
        .route("/dashboard/jobs/{id}", get(job::page))
        .route("/dashboard/queues", get(ops::queues))
        .route("/dashboard/queues/{name}/{action}", post(ops::queue_act))
        .route("/dashboard/workers", get(ops::workers))
        .route("/dashboard/periodic", get(ops::periodic))
        .route("/dashboard/workflows", get(workflow::list))
        .route("/dashboard/workflows/{id}", get(workflow::page))
        .route("/dashboard/workflows/{id}/cancel", post(workflow::cancel))
        .route("/dashboard/batches", get(batch::list))
        .route("/dashboard/batches/{id}", get(batch::page))
        .route("/dashboard/login", get(login_page).post(login))
        .route("/dashboard/logout", post(logout))
        .route("/dashboard/jobs/{id}/{action}", post(act))
}

const CSS: &str = r#"
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #222; }
h1 { font-size: 1.4rem; margin: 0 1rem 0 0; display: inline-block; }
header { display: flex; align-items: baseline; gap: 1rem; flex-wrap: wrap; }
.muted { color: #777; }
table { border-collapse: collapse; margin: .5rem 0 1.5rem; }
th, td { border-bottom: 1px solid #ddd; padding: .3rem .6rem; text-align: left; vertical-align: top; }
td, dd { overflow-wrap: anywhere; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
td.zero { color: #bbb; }
pre.error { margin: 0; white-space: pre-wrap; max-width: 60rem; color: #a00; }
form.inline { display: inline; margin: 0 .2rem 0 0; }
.notice { background: #eef7ee; border: 1px solid #9c9; padding: .4rem .8rem; display: inline-block; }
nav { margin: 0 0 1rem; padding: 0 0 .5rem; border-bottom: 1px solid #ddd; }
nav a { margin-right: 1rem; }
pre.json, pre.trace { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; max-width: 70rem; background: #f6f6f6; padding: .5rem; }
pre.trace { font-size: 12px; color: #555; }
dl.fields { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dl.fields dt { color: #777; } dl.fields dd { margin: 0; }
.problem { background: #fbeeee; border: 1px solid #c99; padding: .4rem .8rem; display: inline-block; }
"#;

/// A whole page: `refresh` is `(seconds, url)`, the page to reload (its own URL without a
/// one-time notice). Its values show the marks that reorder text as the CLI does
/// ([`shown_in_order`]).
fn layout(title: &str, refresh: Option<(u64, &str)>, body: Markup) -> Markup {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                @if let Some((secs, url)) = refresh {
                    meta http-equiv="refresh" content=(format!("{secs}; url={url}"));
                }
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                nav {
                    a href="/" { "Overview" }
                    a href="/dashboard/jobs" { "Jobs" }
                    a href="/dashboard/queues" { "Queues" }
                    a href="/dashboard/workers" { "Workers" }
                    a href="/dashboard/periodic" { "Periodic" }
                    a href="/dashboard/workflows" { "Workflows" }
                    a href="/dashboard/batches" { "Batches" }
                    @if let Some((secs, _)) = refresh {
                        span.muted #refreshes { "refreshes every " (secs) " s" }
                    }
                }
                (body)
            }
        }
    };
    PreEscaped(shown_in_order(&page.into_string()))
}

/// `page` with the marks that reorder the text after them ([`super::reorders_text`]) and the
/// control characters but a
/// line feed and a tab written out as `\u{202e}` in its text, as `porter` prints them on a
/// terminal: a step named `\u{202e}exe.live` read `evil.exe`, and a mark in one cell could
/// reorder what follows it; a NUL or an ESC made the page invalid HTML, and two names that
/// differ only in a CR looked the same (review of 4 Dec). Line feeds and tabs stay: error texts
/// and traces are shown as written. Attribute values keep them all: a form sends its values
/// back (a filter that searched for the written-out text would match other jobs than it
/// counted), and they are not shown. Inside a tag is told apart by `<` and `>` alone, which
/// maud escapes in every value. The page's own markup holds none of these characters but line
/// feeds, and what replaces one is plain ASCII.
fn shown_in_order(page: &str) -> String {
    if !page.chars().any(written_out) {
        return page.to_string();
    }
    let mut out = String::with_capacity(page.len() + 16);
    let mut in_tag = false;
    for c in page.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            _ => {}
        }
        if written_out(c) && !in_tag {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// A mark that reorders text, an invisible character ([`super::invisible`]: a step named
/// `a\u{200b}` read as `a`), or a control character other than a line feed or a tab.
fn written_out(c: char) -> bool {
    super::reorders_text(c) || super::invisible(c) || (c.is_control() && !matches!(c, '\n' | '\t'))
}

fn state_counts(counts: &crate::store::StateCounts) -> Markup {
    html! {
        @for state in JobState::ALL {
            @let n = counts.get(&state).copied().unwrap_or(0);
            td.n.zero[n == 0] data-state=(state.as_str()) { (n) }
        }
    }
}

fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

fn last_error(job: &JobRow) -> Markup {
    match job.last_error() {
        None => html! { span.muted { "no error recorded" } },
        Some(e) => {
            let mut text: String = e.error.chars().take(ERROR_SHOWN).collect();
            if text.len() < e.error.len() {
                text.push_str(" …");
            }
            html! { pre.error { (text) } }
        }
    }
}

fn action(job: &JobRow, verb: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action=(format!("/dashboard/jobs/{}/{verb}", job.id)) {
            button type="submit" class=(verb) data-job-id=(job.id) { (label) }
        }
    }
}

/// A one-time notice after an action: `?retried=ID` or `?cancelled=ID`, or
/// `?not_retried=ID&status=N` for one refused (ids and an error's status only, so the URL
/// cannot put text on the page).
fn notice(state: &AppState, query: Option<&str>) -> Option<String> {
    let pairs: Vec<_> = url::form_urlencoded::parse(query.unwrap_or("").as_bytes()).collect();
    if let Some(text) = refused_notice(state, &pairs) {
        return Some(text);
    }
    pairs.iter().find_map(|(k, v)| {
        let id: i64 = v.parse().ok()?;
        match k.as_ref() {
            "retried" => Some(format!("Job {id} is available again.")),
            "retried_pending" => Some(format!(
                "Job {id} was retried and waits (pending): for its parents, or its sequence's turn."
            )),
            "cancelled" => Some(format!("Job {id} was cancelled.")),
            "cancel_requested" => Some(format!(
                "Job {id} is running: cancel requested, its worker stops it."
            )),
            "logged_in" => Some("Logged in: the buttons work now.".to_string()),
            _ => None,
        }
    })
}

/// The words of actions refused lately, kept by this process for the page a refusal
/// redirects to (a retry's, a cancel's, a bulk action's), which finds them by number: the
/// URL carries no text.
#[derive(Debug)]
pub struct Refusals {
    next: std::sync::atomic::AtomicU64,
    kept: std::sync::Mutex<std::collections::VecDeque<(u64, std::time::Instant, String)>>,
}

impl Default for Refusals {
    fn default() -> Self {
        // Numbers start from the clock, so that a link from before a restart finds nothing
        // rather than another refusal's words.
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_micros() as u64);
        Refusals {
            next: std::sync::atomic::AtomicU64::new(start),
            kept: Default::default(),
        }
    }
}

impl Refusals {
    /// Refusals kept at most, each for at most [`Self::KEPT_FOR`].
    const KEPT: usize = 100;
    const KEPT_FOR: std::time::Duration = std::time::Duration::from_secs(600);

    /// Keeps `words`; answers their number.
    fn keep(&self, words: String) -> u64 {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut kept = self.kept.lock().expect("refusals");
        if kept.len() >= Self::KEPT {
            kept.pop_front();
        }
        kept.push_back((n, std::time::Instant::now(), words));
        n
    }

    /// The words kept as number `n`, if still kept.
    fn said(&self, n: u64) -> Option<String> {
        let kept = self.kept.lock().expect("refusals");
        kept.iter()
            .find(|(m, at, _)| *m == n && at.elapsed() < Self::KEPT_FOR)
            .map(|(_, _, words)| words.clone())
    }
}

/// The notice of an action refused (see [`act`]): `not_retried` or `not_cancelled` with the
/// job's id, `status`, the refusal's HTTP status (an error's only), and `said`, the number of
/// its words in [`Refusals`] (without them, a fixed text for the status).
fn refused_notice(
    state: &AppState,
    pairs: &[(std::borrow::Cow<'_, str>, std::borrow::Cow<'_, str>)],
) -> Option<String> {
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_ref())
    };
    let status = refused_status(field("status"))?;
    let (verb, id) = [("retried", "not_retried"), ("cancelled", "not_cancelled")]
        .into_iter()
        .find_map(|(verb, key)| Some((verb, field(key)?.parse::<i64>().ok()?)))?;
    let why = said(state, field("said")).unwrap_or_else(|| {
        match status {
            StatusCode::CONFLICT => "its state does not allow it (the page shows it as it is now)",
            StatusCode::NOT_FOUND => "no such job",
            other => unsaid(other),
        }
        .to_string()
    });
    Some(format!(
        "Job {id} was not {verb} ({}): {}.",
        status_text(status),
        why.trim_end_matches('.')
    ))
}

/// A refusal's words kept as number `n` ([`Refusals`]), if still kept.
fn said(state: &AppState, n: Option<&str>) -> Option<String> {
    state.refusals.said(n?.parse().ok()?)
}

/// What a refusal's page says of it when its words are not kept: what its status tells.
fn unsaid(status: StatusCode) -> &'static str {
    match status {
        StatusCode::SERVICE_UNAVAILABLE => "the database did not answer: try again",
        _ => "see the server's log",
    }
}

/// `409 Conflict`.
fn status_text(status: StatusCode) -> String {
    format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
}

/// Keeps a refused action's words ([`Refusals`]) and logs them; answers the status and the
/// words' number, for the redirect to the page that tells it (`status=...&said=...`).
fn refused(state: &AppState, e: Error, what: &str) -> String {
    let refused = super::AppError::from(e);
    tracing::info!(action = what, status = refused.status.as_u16(), reason = %refused.message, "dashboard action refused");
    let said = state.refusals.keep(refused.message);
    format!("status={}&said={said}", refused.status.as_u16())
}

/// A refusal's status from the page's query: an error's only.
fn refused_status(text: Option<&str>) -> Option<StatusCode> {
    let status = StatusCode::from_u16(text?.parse().ok()?).ok()?;
    (status.is_client_error() || status.is_server_error()).then_some(status)
}

async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(refused) = readable(&state, &headers) {
        return refused;
    }
    match render_page(&state, &headers, query.as_deref()).await {
        Ok(markup) => Html(markup.into_string()).into_response(),
        Err(e) => error_page(&state, e),
    }
}

/// With a token set, reading a page needs it (the cookie or a bearer header): `Some` is the
/// 401 page with the login form, and no job data.
fn readable(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let cookie = cookie_token(headers);
    if auth::allowed(
        state.config.admin_token.as_deref(),
        [cookie.as_deref(), auth::bearer(headers)],
    ) {
        None
    } else {
        Some(problem_page(
            state,
            StatusCode::UNAUTHORIZED,
            "the dashboard needs the admin token: log in",
        ))
    }
}

/// A page's heading, with the backend and the login or logout button.
fn nav_header(state: &AppState, headers: &HeaderMap, title: &str) -> Markup {
    let token_set = state.config.admin_token.is_some();
    let logged_in = token_set
        && auth::allowed(
            state.config.admin_token.as_deref(),
            [cookie_token(headers).as_deref()],
        );
    html! {
        header {
            h1 { (title) }
            span.muted { "backend: " (state.client.backend()) }
            @if logged_in {
                form.inline method="post" action="/dashboard/logout" { button type="submit" { "Log out" } }
            } @else if token_set {
                a href="/dashboard/login" { "Log in to use the buttons" }
            }
        }
    }
}

async fn render_page(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> crate::Result<Markup> {
    let counts = state.client.counts().await?;
    let mut unserved = state.client.unserved().await?;
    let more_unserved = unserved.len().saturating_sub(UNSERVED_SHOWN);
    unserved.truncate(UNSERVED_SHOWN);
    // The first queues by name, one more to know whether others follow (see `QUEUES_SHOWN`).
    let mut queues = state.client.queue_page(None, QUEUES_SHOWN + 1).await?;
    let more_queues = queues.len() > QUEUES_SHOWN as usize;
    queues.truncate(QUEUES_SHOWN as usize);
    let now = state.client.now().await?;
    let throughput = state
        .client
        .throughput(now - chrono::Duration::minutes(chart::MINUTES))
        .await?;
    let depth = counts.total.get(&JobState::Available).copied().unwrap_or(0);
    state.depth.record(now, depth);
    // Through the bounded listing: a few rows read at a time, large args never held.
    let budget = state.config.max_list_bytes;
    let discarded = listing::list_jobs(
        &state.client,
        JobListParams {
            states: vec![JobState::Discarded],
            limit: Some(JOBS_SHOWN),
            ..Default::default()
        },
        budget,
    )
    .await?
    .jobs;
    let unfinished = listing::list_jobs(
        &state.client,
        JobListParams {
            // Every state not final (until 7 Dec a list without `pending`, the jobs that wait).
            states: JobState::ALL
                .into_iter()
                .filter(|s| !s.is_final())
                .collect(),
            limit: Some(JOBS_SHOWN),
            ..Default::default()
        },
        budget,
    )
    .await?
    .jobs;
    let token_set = state.config.admin_token.is_some();
    let logged_in = token_set
        && auth::allowed(
            state.config.admin_token.as_deref(),
            [cookie_token(headers).as_deref()],
        );
    let refresh = state.config.dashboard_refresh.as_secs().max(1);
    let paused = |name: &str| {
        queues
            .iter()
            .any(|q| q.name == name && q.paused_at.is_some())
    };
    // A queue's flow-control limits (`porter queues limit`), `-` for none.
    let limits = |name: &str| {
        queues
            .iter()
            .find(|q| q.name == name)
            .map(|q| q.limits.to_string())
            .unwrap_or_else(|| "-".to_string())
    };
    // Every queue that has jobs is in the queue list too, so its page names the rows.
    let queue_names: Vec<&String> = queues.iter().map(|q| &q.name).collect();
    let empty = crate::store::StateCounts::new();

    Ok(layout(
        "porter",
        Some((refresh, "/")),
        html! {
            header {
                h1 { "porter" }
                span.muted { "backend: " (state.client.backend()) }
                span.muted { "refreshes every " (refresh) " s" }
                @if logged_in {
                    form.inline method="post" action="/dashboard/logout" { button type="submit" { "Log out" } }
                } @else if token_set {
                    a href="/dashboard/login" { "Log in to use the buttons" }
                }
            }
            @if let Some(text) = notice(state, query) {
                p { span.notice #notice { (text) } }
            }
            section #counts {
                h2 { "Jobs by queue and state" }
                table {
                    thead { tr {
                        th { "queue" }
                        @for s in JobState::ALL { th.n { (s.as_str()) } }
                        th { "limits" }
                    } }
                    tbody {
                        @for name in &queue_names {
                            tr data-queue=(name) {
                                td { (name) @if paused(name) { " " span.muted { "(paused)" } } }
                                (state_counts(counts.queues.get(*name).unwrap_or(&empty)))
                                td.limits { (limits(name)) }
                            }
                        }
                    }
                    tfoot { tr data-queue="" { th { "total" } (state_counts(&counts.total)) td {} } }
                }
                @if let (true, Some(last)) = (more_queues, queue_names.last()) {
                    p #more-queues {
                        a href=(format!("/dashboard/queues?after={}", url_part(last))) { "More queues →" }
                        " "
                        span.muted { "(the first " (QUEUES_SHOWN) " by name are shown here)" }
                    }
                }
            }
            @if !unserved.is_empty() {
                section #unserved {
                    h2 { "Jobs nobody will run" }
                    p.muted { "Due to run, but no live worker serves their queue and kind: start one that does, or check the names." }
                    ul {
                        @for u in &unserved {
                            li data-queue=(u.queue) data-kind=(u.kind) {
                                @if validate_name("queue", &u.queue).is_ok() && validate_name("kind", &u.kind).is_ok() {
                                    a href=(unserved_link(&u.queue, &u.kind)) { (u.to_string()) }
                                } @else {
                                    (u.to_string())
                                }
                            }
                        }
                    }
                    @if more_unserved > 0 {
                        p #more-unserved .muted {
                            "… and " (more_unserved) " more queue and kind pairs (the first "
                            (UNSERVED_SHOWN) " by queue and kind are shown; "
                            code { "porter stats" } " lists them all)"
                        }
                    }
                }
            }
            section #last-hour {
                h2 { "Last hour: jobs finished per minute, and queue depth" }
                (chart::chart(now, &throughput, &state.depth.get()))
            }
            section #failed {
                h2 { "Failed jobs (discarded), newest first" }
                @if discarded.is_empty() {
                    p.muted { "No discarded jobs." }
                } @else {
                    table {
                        thead { tr { th { "id" } th { "kind" } th { "queue" } th { "attempts" } th { "failed at" } th { "last error" } th {} } }
                        tbody {
                            @for job in &discarded {
                                tr #(format!("job-{}", job.id)) data-job-id=(job.id) data-state=(job.state.as_str()) {
                                    td.n { a href=(format!("/dashboard/jobs/{}", job.id)) { (job.id) } }
                                    td { (job.kind) }
                                    td { (job.queue) }
                                    td.n { (job.attempt) " / " (job.max_attempts) }
                                    td { (time(job.finalized_at)) }
                                    td { (last_error(job)) }
                                    td { (action(job, "retry", "Retry")) }
                                }
                            }
                        }
                    }
                }
            }
            section #unfinished {
                h2 { "Unfinished jobs, newest first" }
                @if unfinished.is_empty() {
                    p.muted { "No unfinished jobs." }
                } @else {
                    table {
                        thead { tr { th { "id" } th { "kind" } th { "queue" } th { "state" } th { "attempts" } th { "due" } th { "last error" } th {} } }
                        tbody {
                            @for job in &unfinished {
                                tr #(format!("job-{}", job.id)) data-job-id=(job.id) data-state=(job.state.as_str()) {
                                    td.n { a href=(format!("/dashboard/jobs/{}", job.id)) { (job.id) } }
                                    td { (job.kind) }
                                    td { (job.queue) }
                                    td { (job.state.as_str()) }
                                    td.n { (job.attempt) " / " (job.max_attempts) }
                                    td { @if job.state == JobState::Pending { span.muted { "when its turn comes" } } @else { (time(Some(job.scheduled_at))) } }
                                    td { @if job.errors.is_empty() { } @else { (last_error(job)) } }
                                    td {
                                        @if matches!(job.state, JobState::Scheduled | JobState::Retryable) {
                                            (action(job, "retry", "Run now"))
                                        }
                                        (action(job, "cancel", "Cancel"))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    ))
}

/// Text for one path segment or query value of a link: percent-encoded but for RFC 3986's
/// unreserved characters, so `&`, `#`, `/`, `?`, `%` and spaces in a name (another program
/// may write any) stay part of it. maud escapes the link for HTML on top.
fn url_part(text: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The jobs page listing the waiting jobs of one queue and kind.
fn unserved_link(queue: &str, kind: &str) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for s in [
        JobState::Available,
        JobState::Scheduled,
        JobState::Retryable,
    ] {
        q.append_pair("state", s.as_str());
    }
    q.append_pair("kind", kind).append_pair("queue", queue);
    format!("/dashboard/jobs?{}", q.finish())
}

/// The error page for a failed read or write: a database's own words stay in the server's log,
/// as the admin API's do ([`super::AppError`]), and the page says only that it failed.
pub(super) fn error_page(state: &AppState, e: Error) -> Response {
    let status = super::error::status_for(&e);
    problem_page(state, status, &super::AppError::from(e).message)
}

/// An HTML error page with a way back (and the login form when the token was missing).
fn problem_page(state: &AppState, status: StatusCode, message: &str) -> Response {
    let markup = layout(
        &format!("porter: {}", status.as_u16()),
        None,
        html! {
            h1 { "porter" }
            p { span.problem #problem { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) ": " (message) } }
            @if status == StatusCode::UNAUTHORIZED && state.config.admin_token.is_some() {
                (login_form())
            }
            p { a href="/" { "Back to the dashboard" } }
        },
    );
    (status, Html(markup.into_string())).into_response()
}

fn login_form() -> Markup {
    html! {
        form method="post" action="/dashboard/login" {
            label { "Admin token (PORTER_ADMIN_TOKEN) " input type="password" name="token" autocomplete="current-password"; }
            " "
            button type="submit" { "Log in" }
        }
    }
}

async fn login_page(State(state): State<AppState>) -> Response {
    let body = if state.config.admin_token.is_some() {
        html! {
            h1 { "porter" }
            p { "The dashboard's buttons need the admin token. It is kept in an HttpOnly cookie for this browser session." }
            (login_form())
            p { a href="/" { "Back to the dashboard" } }
        }
    } else {
        html! {
            h1 { "porter" }
            p { "No admin token is set (PORTER_ADMIN_TOKEN), so the buttons need no login." }
            p { a href="/" { "Back to the dashboard" } }
        }
    };
    Html(layout("porter: log in", None, body).into_string()).into_response()
}

/// The form's fields, leniently parsed (any content type, unknown fields ignored).
fn form_token(body: &[u8]) -> Option<String> {
    form_field(body, "token")
}

/// One field of a form body, if it has it.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The cookie's token, percent-decoded (the login encodes it, whatever characters it has).
pub(super) fn cookie_token(headers: &HeaderMap) -> Option<String> {
    let raw = auth::cookie(headers)?;
    Some(
        url::form_urlencoded::parse(format!("t={raw}").as_bytes())
            .next()?
            .1
            .into_owned(),
    )
}

/// Whether the request comes from a page of this same server: no `Origin` (not a browser
/// form), or an `Origin` the guard takes for this server's (its `Host`, or `X-Forwarded-Host`
/// behind a proxy: see `guard::origin_is_ours`).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    super::guard::origin_is_ours(origin.trim(), headers, host)
}

/// Checks origin and token for an action; `Some` is the refusal to answer with.
fn refusal(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Option<Response> {
    if !same_origin(headers) {
        return Some(problem_page(
            state,
            StatusCode::FORBIDDEN,
            "this action was posted from another site",
        ));
    }
    let form = form_token(body);
    let cookie = cookie_token(headers);
    if auth::allowed(
        state.config.admin_token.as_deref(),
        [form.as_deref(), cookie.as_deref(), auth::bearer(headers)],
    ) {
        None
    } else {
        Some(problem_page(
            state,
            StatusCode::UNAUTHORIZED,
            "this action needs the admin token",
        ))
    }
}

async fn login(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !same_origin(&headers) {
        return problem_page(
            &state,
            StatusCode::FORBIDDEN,
            "this login was posted from another site",
        );
    }
    let Some(expected) = state.config.admin_token.as_deref() else {
        return Redirect::to("/").into_response();
    };
    let given = form_token(&body).unwrap_or_default();
    if !auth::token_matches(expected, &given) {
        return problem_page(&state, StatusCode::UNAUTHORIZED, "wrong admin token");
    }
    let value: String = url::form_urlencoded::byte_serialize(given.as_bytes()).collect();
    let cookie = format!("{TOKEN_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/");
    (
        [(header::SET_COOKIE, cookie)],
        Redirect::to("/?logged_in=1"),
    )
        .into_response()
}

async fn logout(headers: HeaderMap, State(state): State<AppState>) -> Response {
    if !same_origin(&headers) {
        return problem_page(
            &state,
            StatusCode::FORBIDDEN,
            "this logout was posted from another site",
        );
    }
    let cookie = format!("{TOKEN_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

/// `POST /dashboard/jobs/{id}/retry` and `.../cancel`.
async fn act(
    State(state): State<AppState>,
    path: Result<Path<(i64, String)>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(page) = refusal(&state, &headers, &body) {
        return page;
    }
    let (id, action) = match path {
        Ok(Path(p)) => p,
        Err(e) => return problem_page(&state, StatusCode::BAD_REQUEST, &e.body_text()),
    };
    let (result, done) = match action.as_str() {
        "retry" => (state.client.retry(id).await, "retried"),
        "cancel" => (state.client.cancel(id).await, "cancelled"),
        _ => {
            return problem_page(
                &state,
                StatusCode::NOT_FOUND,
                "no such action (retry or cancel)",
            )
        }
    };
    // Back to the page the button was on: the overview, or the job's own page.
    let back = match form_field(&body, "from").as_deref() {
        Some("job") => format!("/dashboard/jobs/{id}"),
        _ => "/".to_string(),
    };
    match result {
        Ok(job) if job.state == crate::job::JobState::Running => {
            Redirect::to(&format!("{back}?cancel_requested={id}")).into_response()
        }
        // Retried into waiting again (its parents unfinished, or its sequence's turn to come):
        // until 7 Dec the notice said it was available.
        Ok(job) if job.state == crate::job::JobState::Pending => {
            Redirect::to(&format!("{back}?retried_pending={id}")).into_response()
        }
        Ok(_) => Redirect::to(&format!("{back}?{done}={id}")).into_response(),
        // Refused too, the answer is a redirect to a page to read: an error page answered at
        // the POST's address posted the action again when reloaded (until 7 Dec), and a cancel
        // refused for an ended job then cancelled it once someone had retried it.
        Err(e) => {
            let back = if super::error::status_for(&e) == StatusCode::NOT_FOUND {
                "/"
            } else {
                back.as_str()
            };
            let refused = refused(&state, e, &format!("{action} job {id}"));
            Redirect::to(&format!("{back}?not_{done}={id}&{refused}")).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_that_reorders_or_drives_a_terminal_is_written_out_outside_tags() {
        assert_eq!(
            shown_in_order("<td title=\"a\u{202e}b\">x\u{202e}y\u{1b}z\u{200f}w\u{61c}\n\t</td>"),
            "<td title=\"a\u{202e}b\">x\\u{202e}y\\u{1b}z\\u{200f}w\\u{61c}\n\t</td>"
        );
    }
}
