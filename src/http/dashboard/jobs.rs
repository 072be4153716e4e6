//! `GET /dashboard/jobs`: jobs by state, kind and queue, with a search inside args, newest
//! first, a page at a time; and the bulk actions on everything the filter matches.
//!
//! * **Filters** are query parameters: `state` (repeated or comma-separated), `kind`, `queue`,
//!   `q` (text to find inside the args' JSON, case-sensitive; search for a value, since the
//!   JSON's spacing differs by backend). Anything else, or a value that cannot be one (an
//!   unknown state, a malformed kind or queue), is answered 400 / 422 with what is allowed.
//! * **Pages** follow with `cursor`, a keyset position (the last id shown) signed with a
//!   checksum of the filter it belongs to: a cursor that was edited, or that is used with
//!   other filters, is refused (400) with a link to the first page, never silently read.
//! * **Bulk actions** (retry, cancel, delete of everything the filter matches) take two steps:
//!   `GET /dashboard/jobs/bulk?action=...&<filters>` counts the matching jobs and asks for a
//!   confirmation that states the count (or says that nothing matches, and offers nothing to
//!   submit); its form posts `POST /dashboard/jobs/bulk` with the filter and the highest
//!   matching id, so jobs inserted after the confirmation are never touched. The work runs in
//!   batches ([`BULK_BATCH`](crate::store::admin::BULK_BATCH) jobs per transaction), at most
//!   [`BULK_MAX`](crate::store::admin::BULK_MAX) per submission; a running job is cancelled
//!   through the usual cancel request (its worker stops it), and running jobs are never
//!   retried or deleted. The post needs the admin token (when set) and a same-origin page,
//!   like every dashboard action.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{html, Markup};

use super::{error_page, layout, nav_header, problem_page, readable, refusal, time, AppState};
use crate::http::listing;
use crate::job::{JobRow, JobState};
use crate::store::admin::{BULK_MAX, MAX_ARGS_SEARCH};
use crate::store::{BulkAction, JobFilter, JobSearchParams};

/// Jobs per page.
pub const PAGE_SIZE: u32 = 50;
/// Characters of args shown per row.
const ARGS_PREVIEW: usize = 120;

/// The filter's query string (no cursor), for links and forms.
fn filter_query(filter: &JobFilter) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for s in &filter.states {
        q.append_pair("state", s.as_str());
    }
    if let Some(k) = &filter.kind {
        q.append_pair("kind", k);
    }
    if let Some(queue) = &filter.queue {
        q.append_pair("queue", queue);
    }
    if let Some(text) = &filter.args_contains {
        q.append_pair("q", text);
    }
    q.finish()
}

/// A query's or form's fields, in order.
type Pairs = Vec<(String, String)>;

/// Reads the filter from query or form pairs; `extra` names the other keys the caller reads
/// (returned in order). Unknown keys and impossible values are a clear error.
fn read_filter(
    pairs: &[(String, String)],
    extra: &[&str],
) -> Result<(JobFilter, Pairs), (StatusCode, String)> {
    let bad = |m: String| (StatusCode::BAD_REQUEST, m);
    let mut filter = JobFilter::default();
    let mut rest = Vec::new();
    for (key, value) in pairs {
        match key.as_str() {
            "state" => {
                for s in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let state = s.parse::<JobState>().map_err(|_| {
                        bad(format!(
                            "unknown state {s:?}: use one of {}",
                            JobState::ALL.map(|s| s.as_str()).join(", ")
                        ))
                    })?;
                    if !filter.states.contains(&state) {
                        filter.states.push(state);
                    }
                }
            }
            "kind" if !value.is_empty() => filter.kind = Some(value.clone()),
            "queue" if !value.is_empty() => filter.queue = Some(value.clone()),
            "q" if !value.is_empty() => filter.args_contains = Some(value.clone()),
            "kind" | "queue" | "q" => {}
            k if extra.contains(&k) => rest.push((key.clone(), value.clone())),
            other => {
                return Err(bad(format!(
                    "unknown filter {other:?}: filter by state, kind, queue or q (text in args)"
                )))
            }
        }
    }
    // The state list in a fixed order, so that a cursor's checksum does not depend on it.
    filter
        .states
        .sort_by_key(|s| JobState::ALL.iter().position(|a| a == s));
    filter
        .check()
        .map_err(|e| (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    Ok((filter, rest))
}

fn pairs(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// FNV-1a, 64 bits: a checksum, stable across processes and releases, that ties a cursor to
/// its filter. Not a secret: a cursor is a position, not a permission; the check only turns an
/// edited or misplaced cursor into a clear refusal instead of a wrong page.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn cursor_sum(before_id: i64, filter: &JobFilter) -> u64 {
    fnv1a(format!("porter-jobs-cursor-v1|{before_id}|{}", filter_query(filter)).as_bytes())
}

/// The cursor of the page that starts below `before_id`: `ID.CHECKSUM`.
pub fn make_cursor(before_id: i64, filter: &JobFilter) -> String {
    format!("{before_id}.{:016x}", cursor_sum(before_id, filter))
}

/// The position a cursor holds, if it is one this filter made.
pub fn read_cursor(cursor: &str, filter: &JobFilter) -> Option<i64> {
    let (id, sum) = cursor.split_once('.')?;
    let id: i64 = id.parse().ok()?;
    let sum = u64::from_str_radix(sum, 16).ok()?;
    (sum == cursor_sum(id, filter)).then_some(id)
}

/// The jobs page.
pub(super) async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(refused) = readable(&state, &headers) {
        return refused;
    }
    let all = pairs(query.as_deref().unwrap_or("").as_bytes());
    let (filter, rest) =
        match read_filter(&all, &["cursor", "bulk", "matched", "changed", "requested"]) {
            Ok(f) => f,
            Err((status, message)) => return problem_page(&state, status, &message),
        };
    let get = |k: &str| {
        rest.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let before_id = match get("cursor") {
        None | Some("") => None,
        Some(c) => match read_cursor(c, &filter) {
            Some(id) => Some(id),
            None => {
                let first = format!("/dashboard/jobs?{}", filter_query(&filter));
                let body = html! {
                    h1 { "porter" }
                    p { span.problem #problem { "400 Bad Request: this page link was changed, or belongs to other filters, so it does not say where the page starts." } }
                    p { a #first-page href=(first) { "Start again from the first page of these filters" } }
                };
                return (
                    StatusCode::BAD_REQUEST,
                    Html(layout("porter: bad page link", None, body).into_string()),
                )
                    .into_response();
            }
        },
    };
    let rows = match state
        .client
        .search(JobSearchParams {
            filter: filter.clone(),
            before_id,
            limit: PAGE_SIZE + 1,
            ..JobSearchParams::default()
        })
        .await
    {
        Ok(rows) => rows,
        Err(e) => return error_page(&state, e),
    };
    let more = rows.len() > PAGE_SIZE as usize;
    let jobs: Vec<JobRow> = rows
        .into_iter()
        .take(PAGE_SIZE as usize)
        .map(listing::for_listing)
        .collect();
    let next = more
        .then(|| jobs.last().map(|j| make_cursor(j.id, &filter)))
        .flatten();
    let fq = filter_query(&filter);
    let notice = bulk_notice(&rest);
    let self_url = format!("/dashboard/jobs?{fq}");
    // A reload keeps the filters and the page; a one-time notice is dropped. By a link, not by
    // itself as the other pages do: the page holds the filter form, which a reload every few
    // seconds emptied while it was filled in (until 7 Dec).
    let reload_url = match (before_id, get("cursor")) {
        (Some(_), Some(c)) => format!("/dashboard/jobs?{fq}&cursor={c}"),
        _ => self_url.clone(),
    };
    let body = html! {
        (nav_header(&state, &headers, "Jobs"))
        @if let Some(text) = notice {
            p { span.notice #notice { (text) } }
        }
        (filter_form(&filter))
        p #bulk {
            "Everything these filters match: "
            @for action in [BulkAction::Retry, BulkAction::Cancel, BulkAction::Delete] {
                a.bulk href=(format!("/dashboard/jobs/bulk?action={}&{fq}", action.as_str())) data-action=(action.as_str()) {
                    (label(action)) " all…"
                }
                " "
            }
        }
        @if jobs.is_empty() {
            p.muted #empty { "No job matches these filters." }
        } @else {
            table #jobs {
                thead { tr { th { "id" } th { "kind" } th { "queue" } th { "state" } th { "attempts" } th { "created" } th { "args" } } }
                tbody {
                    @for job in &jobs {
                        tr #(format!("job-{}", job.id)) data-job-id=(job.id) data-state=(job.state.as_str()) {
                            td.n { a href=(format!("/dashboard/jobs/{}", job.id)) { (job.id) } }
                            td { (job.kind) }
                            td { (job.queue) }
                            td { (job.state.as_str()) }
                            td.n { (job.attempt) " / " (job.max_attempts) }
                            td { (time(Some(job.created_at))) }
                            td { code { (preview(&job.args)) } }
                        }
                    }
                }
            }
        }
        p {
            a #reload href=(reload_url) { "Reload" } " "
            @if before_id.is_some() {
                a #first-page href=(self_url) { "First page" } " "
            }
            @if let Some(c) = next {
                a #next-page href=(format!("/dashboard/jobs?{fq}{}cursor={c}", if fq.is_empty() { "" } else { "&" })) { "Older jobs →" }
            }
        }
    };
    Html(layout("porter: jobs", None, body).into_string()).into_response()
}

fn preview(args: &serde_json::Value) -> String {
    let text = args.to_string();
    if text.chars().count() > ARGS_PREVIEW {
        let mut cut: String = text.chars().take(ARGS_PREVIEW).collect();
        cut.push('…');
        cut
    } else {
        text
    }
}

fn label(action: BulkAction) -> &'static str {
    match action {
        BulkAction::Retry => "Retry",
        BulkAction::Cancel => "Cancel",
        BulkAction::Delete => "Delete",
    }
}

/// The notice after a bulk action: numbers only, so the URL cannot put text on the page.
fn bulk_notice(rest: &[(String, String)]) -> Option<String> {
    let get = |k: &str| {
        rest.iter()
            .find(|(key, _)| key == k)
            .and_then(|(_, v)| v.parse::<u64>().ok())
    };
    let action = rest
        .iter()
        .find(|(k, _)| k == "bulk")
        .and_then(|(_, v)| v.parse::<BulkAction>().ok())?;
    let (matched, changed) = (get("matched")?, get("changed")?);
    if matched == 0 {
        return Some("No job matched these filters: nothing was changed.".to_string());
    }
    let done = match action {
        BulkAction::Retry => "retried",
        BulkAction::Cancel => "cancelled",
        BulkAction::Delete => "deleted",
    };
    let mut text = format!("{changed} of {matched} matching jobs {done}.");
    if let Some(n) = get("requested").filter(|n| *n > 0) {
        text.push_str(&format!(
            " {n} of them are running: cancel requested, their workers stop them."
        ));
    }
    if changed < matched {
        text.push_str(match action {
            // A bulk retry also leaves a child whose parents have not all ended as it needs,
            // and one retried with its parent (review of 7 Dec: 34 of 37 cancelled steps were
            // said to be refused for their state).
            BulkAction::Retry => " The others were left as they are: their state, or their parents' (retry a workflow's steps one by one), did not allow it.",
            _ => " The others' state did not allow it.",
        });
    }
    Some(text)
}

fn filter_form(filter: &JobFilter) -> Markup {
    html! {
        form #filters method="get" action="/dashboard/jobs" {
            fieldset {
                legend { "Filters" }
                @for s in JobState::ALL {
                    label.state { input type="checkbox" name="state" value=(s.as_str()) checked[filter.states.contains(&s)]; " " (s.as_str()) } " "
                }
                br;
                label { "kind " input type="text" name="kind" value=(filter.kind.as_deref().unwrap_or("")) size="16"; } " "
                label { "queue " input type="text" name="queue" value=(filter.queue.as_deref().unwrap_or("")) size="16"; } " "
                label { "args contain " input type="search" name="q" value=(filter.args_contains.as_deref().unwrap_or("")) size="24" maxlength=(MAX_ARGS_SEARCH); } " "
                button type="submit" #apply { "Show" } " "
                a href="/dashboard/jobs" { "Clear" }
            }
        }
    }
}

/// A bulk action's filter goes through the confirmation's form, whose hidden fields a browser
/// submits with each bare LF as CRLF (and parses a bare CR as LF): a search with a line
/// break would come back as other text, matching other jobs than the count (until 7 Dec the
/// post acted on those). Refused on both steps; the list page still searches for it.
fn bulk_filter(
    read: Result<(JobFilter, Pairs), (StatusCode, String)>,
) -> Result<(JobFilter, Pairs), (StatusCode, String)> {
    let (filter, rest) = read?;
    if filter
        .args_contains
        .as_deref()
        .is_some_and(|t| t.contains(['\r', '\n']))
    {
        return Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            "a bulk action cannot search args for a line break (a browser's form rewrites it): search for text on one line".to_string(),
        ));
    }
    Ok((filter, rest))
}

/// `GET /dashboard/jobs/bulk?action=...&<filters>`: the confirmation, with the count.
pub(super) async fn confirm(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(refused) = readable(&state, &headers) {
        return refused;
    }
    let all = pairs(query.as_deref().unwrap_or("").as_bytes());
    let (filter, rest) =
        match bulk_filter(read_filter(&all, &["action", "status", "said", "changed"])) {
            Ok(f) => f,
            Err((status, message)) => return problem_page(&state, status, &message),
        };
    let action = match read_action(&rest) {
        Ok(a) => a,
        Err(message) => return problem_page(&state, StatusCode::BAD_REQUEST, &message),
    };
    let count = match state.client.count_matching(filter.clone()).await {
        Ok(c) => c,
        Err(e) => return error_page(&state, e),
    };
    let fq = filter_query(&filter);
    let back = format!("/dashboard/jobs?{fq}");
    let verb = label(action).to_lowercase();
    // After a refused run (see `run`): what refused it.
    let field = |name: &str| {
        rest.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let refusal = super::refused_status(field("status")).map(|status| {
        let words =
            super::said(&state, field("said")).unwrap_or_else(|| super::unsaid(status).to_string());
        // Batches written before the error stay written (each commits on its own): until 7 Dec
        // this said "Nothing was changed" of a submission stopped part-way.
        let before = match field("changed").and_then(|n| n.parse::<u64>().ok()) {
            None | Some(0) => "Nothing was changed".to_string(),
            Some(1) => "1 job was changed, then this stopped the rest".to_string(),
            Some(n) => format!("{n} jobs were changed, then this stopped the rest"),
        };
        format!(
            "{before} ({}): {}. The count below is new: confirm it again.",
            super::status_text(status),
            words.trim_end_matches('.')
        )
    });
    let body = html! {
        (nav_header(&state, &headers, &format!("{} all matching jobs", label(action))))
        @if let Some(text) = &refusal {
            p { span.notice #notice { (text) } }
        }
        (describe(&filter))
        @match count.max_id {
            None => {
                p #count data-count="0" { "No job matches these filters: there is nothing to " (verb) ", and nothing was changed." }
            }
            Some(max_id) => {
                p #count data-count=(count.count) {
                    (count.count) " " @if count.count == 1 { "job matches" } @else { "jobs match" } " these filters. "
                    (what_happens(action))
                }
                @if count.count as u64 > BULK_MAX {
                    p.muted { "One submission changes at most " (BULK_MAX) " jobs, the newest first; submit again for the rest." }
                }
                form #confirm method="post" action="/dashboard/jobs/bulk" {
                    input type="hidden" name="action" value=(action.as_str());
                    @for s in &filter.states { input type="hidden" name="state" value=(s.as_str()); }
                    @if let Some(k) = &filter.kind { input type="hidden" name="kind" value=(k); }
                    @if let Some(q) = &filter.queue { input type="hidden" name="queue" value=(q); }
                    @if let Some(t) = &filter.args_contains { input type="hidden" name="q" value=(t); }
                    input type="hidden" name="max_id" value=(max_id);
                    input type="hidden" name="count" value=(count.count);
                    @if !count.in_progress.is_empty() {
                        input type="hidden" name="in_progress" value=(count.in_progress.iter().map(i64::to_string).collect::<Vec<_>>().join(","));
                    }
                    button type="submit" class=(action.as_str()) { (label(action)) " " (count.count) " " @if count.count == 1 { "job" } @else { "jobs" } }
                }
            }
        }
        p { a #back href=(back) { "Back to the jobs" } }
    };
    Html(layout("porter: confirm", None, body).into_string()).into_response()
}

fn what_happens(action: BulkAction) -> &'static str {
    match action {
        BulkAction::Retry => "Those not running become available now (running ones, and children whose parents have not all ended, are left alone).",
        BulkAction::Cancel => "Unfinished ones are cancelled; running ones are asked to stop (their workers stop them); finished ones are left alone.",
        BulkAction::Delete => "Those not running are deleted for good, with their history (running ones are left alone).",
    }
}

fn describe(filter: &JobFilter) -> Markup {
    html! {
        ul #filter {
            li { "states: " @if filter.states.is_empty() { "any" } @else { (filter.states.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")) } }
            li { "kind: " (filter.kind.as_deref().unwrap_or("any")) }
            li { "queue: " (filter.queue.as_deref().unwrap_or("any")) }
            @if let Some(t) = &filter.args_contains { li { "args contain: " code { (t) } } }
        }
    }
}

fn read_action(rest: &[(String, String)]) -> Result<BulkAction, String> {
    let value = rest
        .iter()
        .find(|(k, _)| k == "action")
        .map(|(_, v)| v.as_str())
        .ok_or("say which bulk action: action=retry, cancel or delete")?;
    value.parse::<BulkAction>().map_err(|e| e.to_string())
}

/// `POST /dashboard/jobs/bulk`: runs a confirmed bulk action.
pub(super) async fn run(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(page) = refusal(&state, &headers, &body) {
        return page;
    }
    let all: Vec<(String, String)> = pairs(&body)
        .into_iter()
        .filter(|(k, _)| k != "token")
        .collect();
    let (filter, rest) = match bulk_filter(read_filter(
        &all,
        &["action", "max_id", "in_progress", "count"],
    )) {
        Ok(f) => f,
        Err((status, message)) => return problem_page(&state, status, &message),
    };
    let action = match read_action(&rest) {
        Ok(a) => a,
        Err(message) => return problem_page(&state, StatusCode::BAD_REQUEST, &message),
    };
    let max_id = match rest
        .iter()
        .find(|(k, _)| k == "max_id")
        .and_then(|(_, v)| v.parse::<i64>().ok())
    {
        Some(id) => id,
        None => {
            return problem_page(
                &state,
                StatusCode::BAD_REQUEST,
                "a bulk action needs max_id, the highest job id its confirmation counted: open the confirmation page first",
            )
        }
    };
    // The transactions in progress at the count (PostgreSQL): their jobs are left alone.
    let in_progress = match rest.iter().find(|(k, _)| k == "in_progress") {
        None => Vec::new(),
        Some((_, v)) => match v.split(',').map(str::parse::<i64>).collect() {
            Ok(ids) => ids,
            Err(_) => {
                return problem_page(
                    &state,
                    StatusCode::BAD_REQUEST,
                    "in_progress is a list of transaction ids from the confirmation page: open it again",
                )
            }
        },
    };
    // How many it counted: more matching now is refused (a form from before it was sent is
    // not checked).
    let counted = match rest.iter().find(|(k, _)| k == "count") {
        None => None,
        Some((_, v)) => match v.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return problem_page(
                    &state,
                    StatusCode::BAD_REQUEST,
                    "count is the number of jobs the confirmation page counted: open it again",
                )
            }
        },
    };
    let fence = crate::store::BulkFence {
        max_id,
        in_progress,
        counted,
    };
    let fq = filter_query(&filter);
    // A task of its own: its batches commit one by one, and a client that goes away (a page
    // left, a proxy's timeout) dropped this handler between two of them (until 7 Dec), which
    // left the action part-done and nobody told.
    let bulk = crate::store::watch::spawn_watched({
        let client = state.client.clone();
        let filter = filter.clone();
        async move { client.bulk(action, filter, fence).await }
    });
    let outcome = match bulk.await {
        Ok(Ok(o)) => o,
        // Refused (more jobs match than were counted, say) or stopped part-way: back to the
        // confirmation, counted afresh, with the refusal's words and what was changed before
        // it. An error page at this POST's address posted the action again when reloaded
        // (until 7 Dec), and a count that matched by then acted.
        Ok(Err(stopped)) => {
            let refused =
                super::refused(&state, stopped.error, &format!("bulk {}", action.as_str()));
            return Redirect::to(&format!(
                "/dashboard/jobs/bulk?{fq}{}action={}&{refused}&changed={}",
                if fq.is_empty() { "" } else { "&" },
                action.as_str(),
                stopped.done.changed
            ))
            .into_response();
        }
        Err(panicked) => {
            return problem_page(
                &state,
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("the bulk action failed: {panicked}"),
            )
        }
    };
    Redirect::to(&format!(
        "/dashboard/jobs?{fq}{}bulk={}&matched={}&changed={}&requested={}",
        if fq.is_empty() { "" } else { "&" },
        action.as_str(),
        outcome.matched,
        outcome.changed,
        outcome.cancel_requested
    ))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_only_with_its_own_filter_and_untouched() {
        let filter = JobFilter {
            states: vec![JobState::Discarded],
            kind: Some("mail".into()),
            ..Default::default()
        };
        let c = make_cursor(1234, &filter);
        assert_eq!(read_cursor(&c, &filter), Some(1234));
        assert_eq!(read_cursor(&c.replacen("1234", "1235", 1), &filter), None);
        assert_eq!(read_cursor(&c, &JobFilter::default()), None);
        assert_eq!(read_cursor("garbage", &filter), None);
        assert_eq!(read_cursor("12.zz", &filter), None);
    }
}
