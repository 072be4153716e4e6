//! The pages about the queue's moving parts: `GET /dashboard/queues` (counts by state, paused,
//! with pause and resume buttons posting `POST /dashboard/queues/{name}/pause|resume`),
//! `GET /dashboard/workers` (each registered worker process: host, pid, start, heartbeat age,
//! jobs running) and `GET /dashboard/periodic` (each schedule: last slot, next slot, the last
//! slot's job).

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use maud::html;

use super::{
    error_page, layout, nav_header, problem_page, readable, refusal, state_counts, time, url_part,
    AppState,
};
use crate::job::{validate_name, JobState};

/// A one-time notice after a pause or resume: the queue name, checked like every queue name.
fn queue_notice(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes()).find_map(|(k, v)| {
        validate_name("queue", &v).ok()?;
        match k.as_ref() {
            "paused" => Some(format!(
                "Queue {v} is paused: its jobs wait until it is resumed."
            )),
            "resumed" => Some(format!("Queue {v} is resumed.")),
            _ => None,
        }
    })
}

/// Why a queue (or kind) another program named is shown without a filter link or buttons:
/// the filters and the pause refuse such a name, so each would lead to an error page.
pub(super) const REFUSED_NAME: &str =
    "Another program wrote this name; porter's filters and buttons take only ^[a-z0-9_.-]{1,64}$";

/// Queues shown on one page of `GET /dashboard/queues`.
pub(super) const QUEUES_PAGE: u32 = 100;

/// `GET /dashboard/queues?after=NAME`: [`QUEUES_PAGE`] queues by name from the first after
/// `after` (a cursor, any text), with a link to the next ones.
pub(super) async fn queues(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(refused) = readable(&state, &headers) {
        return refused;
    }
    let after = url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "after")
        .map(|(_, v)| v.into_owned());
    let page = state.client.queue_page(after.clone(), QUEUES_PAGE + 1);
    let (counts, mut queues) = match (state.client.counts().await, page.await) {
        (Ok(c), Ok(q)) => (c, q),
        (Err(e), _) | (_, Err(e)) => return error_page(&state, e),
    };
    // A name that reads as the cursor (text that is not UTF-8, read with U+FFFD) was the last
    // page's.
    queues.retain(|q| Some(&q.name) != after.as_ref());
    let more = queues.len() > QUEUES_PAGE as usize;
    queues.truncate(QUEUES_PAGE as usize);
    // Every queue that has jobs is in the queue list too, so its page names the rows.
    let names: Vec<&String> = queues.iter().map(|q| &q.name).collect();
    let empty = crate::store::StateCounts::new();
    let refresh = state.config.dashboard_refresh.as_secs().max(1);
    let body = html! {
        (nav_header(&state, &headers, "Queues"))
        @if let Some(text) = queue_notice(query.as_deref()) {
            p { span.notice #notice { (text) } }
        }
        @if names.is_empty() && after.is_some() {
            p.muted { "No more queues." }
        } @else if names.is_empty() {
            p.muted { "No queue has jobs yet." }
        } @else {
            table #queues {
                thead { tr {
                    th { "queue" }
                    @for s in JobState::ALL { th.n { (s.as_str()) } }
                    th { "paused" }
                    th { "limits" }
                    th {}
                } }
                tbody {
                    @for name in &names {
                        @let row = queues.iter().find(|q| &&q.name == name);
                        @let paused_at = row.and_then(|q| q.paused_at);
                        tr #(format!("queue-{name}")) data-queue=(name) data-paused=(paused_at.is_some()) {
                            @let usable = validate_name("queue", name).is_ok();
                            td {
                                @if usable { a href=(format!("/dashboard/jobs?queue={}", url_part(name))) { (name) } }
                                @else { (name) " " span.muted title=(REFUSED_NAME) { "(not a name porter takes)" } }
                            }
                            (state_counts(counts.queues.get(*name).unwrap_or(&empty)))
                            td { @if let Some(at) = paused_at { "since " (time(Some(at))) } @else { span.muted { "no" } } }
                            td.limits { @match row { Some(q) => (q.limits), None => "-" } }
                            td {
                                @let verb = if paused_at.is_some() { "resume" } else { "pause" };
                                @if usable {
                                    form.inline method="post" action=(format!("/dashboard/queues/{}/{verb}", url_part(name))) {
                                        button type="submit" class=(verb) data-queue=(name) {
                                            @if paused_at.is_some() { "Resume" } @else { "Pause" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let (true, Some(last)) = (more, names.last()) {
            p { a #next-queues href=(format!("/dashboard/queues?after={}", url_part(last))) { "Next queues →" } }
        }
    };
    let here = match &after {
        Some(after) => format!("/dashboard/queues?after={}", url_part(after)),
        None => "/dashboard/queues".to_string(),
    };
    Html(layout("porter: queues", Some((refresh, &here)), body).into_string()).into_response()
}

/// `POST /dashboard/queues/{name}/pause` and `.../resume`.
pub(super) async fn queue_act(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(page) = refusal(&state, &headers, &body) {
        return page;
    }
    let Ok(Path((name, action))) = path else {
        return problem_page(&state, StatusCode::BAD_REQUEST, "no such queue path");
    };
    let result = match action.as_str() {
        "pause" => state.client.queue_pause(&name).await,
        "resume" => state.client.queue_resume(&name).await,
        _ => {
            return problem_page(
                &state,
                StatusCode::NOT_FOUND,
                "no such action (pause or resume)",
            )
        }
    };
    match result {
        Ok(()) => {
            let done = if action == "pause" {
                "paused"
            } else {
                "resumed"
            };
            Redirect::to(&format!("/dashboard/queues?{done}={}", url_part(&name))).into_response()
        }
        Err(e) => error_page(&state, e),
    }
}

fn age(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    let secs = (now - then).num_seconds().max(0);
    match secs {
        0..=119 => format!("{secs} s"),
        120..=7199 => format!("{} min", secs / 60),
        _ => format!("{} h", secs / 3600),
    }
}

/// `GET /dashboard/workers`.
pub(super) async fn workers(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(refused) = readable(&state, &headers) {
        return refused;
    }
    let (workers, running, now) = match (
        state.client.worker_list().await,
        state.client.running_by_worker().await,
        state.client.now().await,
    ) {
        (Ok(w), Ok(r), Ok(n)) => (w, r, n),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return error_page(&state, e),
    };
    let refresh = state.config.dashboard_refresh.as_secs().max(1);
    let body = html! {
        (nav_header(&state, &headers, "Workers"))
        @if workers.is_empty() {
            p.muted #no-workers { "No worker process is registered: jobs wait until one starts (porter worker)." }
        } @else {
            table #workers {
                thead { tr { th { "worker" } th { "host" } th.n { "pid" } th { "started" } th.n { "heartbeat age" } th { "serves" } th.n { "jobs running" } } }
                tbody {
                    @for w in &workers {
                        tr data-worker=(w.id) {
                            td { code { (w.id) } }
                            td.host { (w.host) }
                            td.n.pid { (w.pid) }
                            td { (time(Some(w.started_at))) }
                            td.n.heartbeat { (age(now, w.heartbeat_at)) }
                            td.serves { (serves(w)) }
                            td.n.running { (running.get(&w.id).copied().unwrap_or(0)) }
                        }
                    }
                }
            }
        }
        @let orphans: i64 = running.iter().filter(|(id, _)| !workers.iter().any(|w| &&w.id == id)).map(|(_, n)| *n).sum();
        @if orphans > 0 {
            p #unregistered { (orphans) " running jobs belong to workers that are no longer registered; the rescuer gives them back once their lease runs out." }
        }
    };
    Html(
        layout(
            "porter: workers",
            Some((refresh, "/dashboard/workers")),
            body,
        )
        .into_string(),
    )
    .into_response()
}

/// What a worker serves, as it registered it: `queues default, mail; kinds noop, sleep`
/// (`any` for a registration from before workers registered it).
fn serves(w: &crate::store::WorkerRow) -> String {
    let list = |names: &Option<Vec<String>>| match names {
        Some(names) if names.is_empty() => "none".to_string(),
        Some(names) => names.join(", "),
        None => "any".to_string(),
    };
    format!("queues {}; kinds {}", list(&w.queues), list(&w.kinds))
}

/// `GET /dashboard/periodic`.
pub(super) async fn periodic(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(refused) = readable(&state, &headers) {
        return refused;
    }
    let rows = match state.client.periodic_list().await {
        Ok(r) => r,
        Err(e) => return error_page(&state, e),
    };
    let mut last_jobs = Vec::with_capacity(rows.len());
    for row in &rows {
        let job = match row.last_job_id {
            Some(id) => match state.client.get(id).await {
                Ok(job) => job,
                Err(e) => return error_page(&state, e),
            },
            None => None,
        };
        last_jobs.push(job);
    }
    let refresh = state.config.dashboard_refresh.as_secs().max(1);
    let slot_time = |ms: i64| DateTime::from_timestamp_millis(ms);
    let body = html! {
        (nav_header(&state, &headers, "Periodic schedules"))
        @if rows.is_empty() {
            p.muted #no-schedules { "No periodic schedule has run yet." }
        } @else {
            table #schedules {
                thead { tr { th { "schedule" } th { "last slot" } th { "next slot" } th { "last job" } } }
                tbody {
                    @for (row, job) in rows.iter().zip(&last_jobs) {
                        @let schedule = state.config.periodic.iter().find(|p| p.name == row.name);
                        tr data-schedule=(row.name) {
                            td { (row.name) }
                            td.last { (time(slot_time(row.last_slot))) }
                            td.next {
                                @match schedule.and_then(|s| s.schedule.next_slot(row.last_slot)) {
                                    Some(next) => (time(Some(next))),
                                    None => span.muted { "schedule not known to this process" },
                                }
                            }
                            td.job {
                                @match job {
                                    Some(job) => {
                                        a href=(format!("/dashboard/jobs/{}", job.id)) { "job " (job.id) }
                                        " " span.muted { (job.state.as_str()) }
                                    }
                                    None => span.muted { "gone (retention) or not enqueued" },
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Html(
        layout(
            "porter: periodic",
            Some((refresh, "/dashboard/periodic")),
            body,
        )
        .into_string(),
    )
    .into_response()
}
