//! The batch pages: `GET /dashboard/batches` (newest first, [`BATCHES_SHOWN`] a page, or fewer
//! within the listings' byte budget: each
//! batch's mode, how many jobs it was inserted with, its members' counts by state and its
//! callback, a link to the callback job's page) and `GET /dashboard/batches/{id}`, one batch as
//! `porter batches show` prints it. The callback's kind is another program's text at worst:
//! maud escapes it, and its control characters and bidirectional overrides are replaced as in
//! the workflow graph's labels.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup};

use super::workflow::{colours, label, state_counts, Paging, LISTED_NAME_CHARS};
use super::{error_page, layout, nav_header, problem_page, readable, time, AppState};
use crate::batch::BatchRow;
use crate::http::listing;

/// Batches listed a page.
pub const BATCHES_SHOWN: u32 = 50;

/// The callback: a link to its job's page with its kind (cut as in the list) and state, or
/// what is left of it.
fn callback(b: &BatchRow) -> Markup {
    html! {
        @match (b.callback_id, &b.callback_kind, b.callback_state) {
            (Some(id), Some(kind), Some(state)) => {
                a href=(format!("/dashboard/jobs/{id}")) { (id) } " " (label(kind, LISTED_NAME_CHARS)) " "
                span.count data-state=(state.as_str()) style=(format!("border-bottom: 3px solid {}", colours(state).1)) {
                    (state.as_str())
                }
            }
            (Some(id), _, _) => { (id) " " span.muted { "(deleted)" } }
            _ => { span.muted { "none" } }
        }
    }
}

/// `GET /dashboard/batches?before_id=`.
pub(super) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(refused) = readable(&state, &headers) {
        return refused;
    }
    let paging = match Paging::from_query(&state, "/dashboard/batches", query.as_deref()) {
        Ok(p) => p,
        Err(refused) => return *refused,
    };
    // Bounded in bytes as `GET /admin/batches` is: another program's kinds can be long.
    let budget = state.config.max_list_bytes;
    let shown = Some(BATCHES_SHOWN);
    let (batches, next) =
        match listing::batches_page(&state.client, shown, budget, paging.before_id).await {
            Ok(page) => page,
            Err(e) => return error_page(&state, e),
        };
    let refresh = state.config.dashboard_refresh.as_secs().max(1);
    let url = paging.url();
    let body = html! {
        (nav_header(&state, &headers, "Batches"))
        @if batches.is_empty() {
            p.muted #no-batches { "No batches." }
        } @else {
            table #batches {
                thead { tr { th.n { "id" } th { "created" } th { "mode" } th.n { "jobs" } th { "states" } th { "callback" } } }
                tbody {
                    @for b in &batches {
                        tr #(format!("batch-{}", b.id)) data-batch-id=(b.id) {
                            td.n { a href=(format!("/dashboard/batches/{}", b.id)) { (b.id) } }
                            td { (time(Some(b.created_at))) }
                            td { (b.mode()) }
                            td.n { (b.members) }
                            td.states { (state_counts(&b.counts, "no jobs left")) }
                            td.callback { (callback(b)) }
                        }
                    }
                }
            }
        }
        (paging.links(next))
    };
    Html(layout("porter: batches", Some((refresh, &url)), body).into_string()).into_response()
}

/// `GET /dashboard/batches/{id}`.
pub(super) async fn page(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = readable(&state, &headers) {
        return refused;
    }
    let Ok(Path(id)) = path else {
        return problem_page(
            &state,
            StatusCode::BAD_REQUEST,
            "a batch id is a whole number, as in /dashboard/batches/7",
        );
    };
    let b = match state.client.batch(id).await {
        Ok(Some(b)) => b,
        Ok(None) => return error_page(&state, crate::Error::not_found("batch", id)),
        Err(e) => return error_page(&state, e),
    };
    let refresh = state.config.dashboard_refresh.as_secs().max(1);
    let url = format!("/dashboard/batches/{id}");
    let body = html! {
        (nav_header(&state, &headers, &format!("Batch {id}")))
        table #batch {
            tbody {
                tr { th { "created" } td { (time(Some(b.created_at))) } }
                tr { th { "mode" } td #mode { (b.mode()) } }
                tr { th { "jobs" } td #members { (b.members) } }
                tr { th { "states" } td.states { (state_counts(&b.counts, "no jobs left")) } }
                tr { th { "callback" } td.callback { (callback(&b)) } }
            }
        }
        p { a href="/dashboard/batches" { "All batches" } }
    };
    Html(layout(&format!("porter: batch {id}"), Some((refresh, &url)), body).into_string())
        .into_response()
}
