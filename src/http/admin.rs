//! The admin JSON API under `/admin`: insert, list, inspect, retry and cancel jobs; stats;
//! pause and resume queues. Behind the admin token when one is set.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::listing::{self, JobPage};
use super::{auth, AppError, AppState};
use crate::app::api::json_body;
use crate::error::Error;
use crate::job::{validate_name, InsertOpts, JobRow, JobState};
use crate::store::{JobInsertParams, JobListParams, QueueRow};

pub(super) fn routes(state: AppState) -> axum::Router<AppState> {
    Router::new()
        .route("/jobs", post(insert_job).get(list_jobs))
        .route("/jobs/{id}", get(get_job))
        .route("/jobs/{id}/children", get(job_children))
        .route("/jobs/{id}/parents", get(job_parents))
        .route("/jobs/{id}/retry", post(retry_job))
        .route("/jobs/{id}/cancel", post(cancel_job))
        .route("/failed", get(failed_jobs))
        .route("/stats", get(stats))
        .route("/queues", get(list_queues))
        .route("/queues/{name}/pause", post(pause_queue))
        .route("/queues/{name}/resume", post(resume_queue))
        .route("/queues/{name}/limit", post(limit_queue))
        .route("/workflows", get(list_workflows))
        .route("/workflows/{id}", get(get_workflow))
        .route("/workflows/{id}/cancel", post(cancel_workflow))
        .route("/batches", get(list_batches))
        .route("/batches/{id}", get(get_batch))
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            auth::require_admin,
        ))
}

/// The body of `POST /admin/jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewJob {
    kind: String,
    #[serde(default = "empty_object")]
    args: Value,
    queue: Option<String>,
    priority: Option<i16>,
    max_attempts: Option<i32>,
    scheduled_at: Option<DateTime<Utc>>,
    unique_key: Option<String>,
    concurrency_key: Option<String>,
    sequence_key: Option<String>,
    /// `null` or left out: none (as for every optional field here).
    depends_on: Option<Vec<i64>>,
    after_any: Option<bool>,
}

fn empty_object() -> Value {
    json!({})
}

/// Refuses a kind that no worker runs (unless the config accepts any kind).
pub(crate) fn check_kind(state: &AppState, kind: &str) -> Result<(), Error> {
    validate_name("kind", kind)?;
    match &state.config.known_kinds {
        Some(known) if !known.contains(kind) => Err(Error::invalid(
            "kind",
            format!(
                "no worker runs {kind:?}; known kinds: {}",
                known
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
        _ => Ok(()),
    }
}

async fn insert_job(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let job: NewJob = json_body::<_, AppError>(&headers, body)?;
    check_kind(&state, &job.kind)?;
    crate::app::builtin::check_builtin_args(&job.kind, &job.args)?;
    let opts = InsertOpts {
        queue: job.queue,
        priority: job.priority,
        max_attempts: job.max_attempts,
        scheduled_at: job.scheduled_at,
        unique_key: job.unique_key,
        concurrency_key: job.concurrency_key,
        sequence_key: job.sequence_key,
        depends_on: job.depends_on.unwrap_or_default(),
        after_any: job.after_any.unwrap_or_default(),
        ..Default::default()
    };
    let params = JobInsertParams::new(&job.kind, job.args, opts)?;
    let result = state
        .client
        .insert_many_params(vec![params])
        .await?
        .remove(0);
    state
        .metrics
        .inserted(&result.job.queue, &result.job.kind, result.inserted);
    let mut body = json!({ "id": result.job.id, "inserted": result.inserted });
    // Deduplicated to a job being cancelled: nothing will run, whoever serves it.
    if let Some(warning) = result.held_by_a_cancelled_job() {
        body["warning"] = warning.into();
        return Ok((StatusCode::CREATED, Json(body)));
    }
    // Inserted cancelled (a parent had failed): it will not run, whoever serves it. Said as
    // `porter enqueue` says it; it used to say the job waited for a worker.
    if result.inserted && result.job.state == crate::job::JobState::Cancelled {
        let why = result
            .job
            .errors
            .last()
            .map(|e| e.error.as_str())
            .unwrap_or_default();
        body["warning"] = format!(
            "job {} was inserted cancelled and will not run: {why}",
            result.job.id
        )
        .into();
        return Ok((StatusCode::CREATED, Json(body)));
    }
    // Jobs nobody will run (issue 17.7): said, not refused; a failed check only goes unsaid.
    match state
        .client
        .served(&result.job.queue, &result.job.kind)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            body["warning"] =
                crate::store::UnservedRow::warning(&result.job.queue, &result.job.kind, 1).into()
        }
        Err(e) => tracing::debug!(error = %e, "could not ask whether a live worker serves the job"),
    }
    Ok((StatusCode::CREATED, Json(body)))
}

/// A query parameter's name and value, decoded.
type QueryPair<'q> = (std::borrow::Cow<'q, str>, std::borrow::Cow<'q, str>);

/// The parameters of a query, each one `known` and given once (but those `repeatable`, as a
/// listing's `state`): an unknown one, or one given twice (`?limit=1&limit=2`, which one
/// would the caller mean?), is a 400 naming it, on every route, with or without parameters.
/// One given empty is one not given, as DESIGN.md writes the listing's query
/// (`?state=&kind=&queue=&limit=&before_id=`: until 7 Dec that template, filled with blanks
/// for the filters not wanted, was a 422); but for `after`, the queues' cursor, for which the
/// empty string is a queue's name another program may have written.
fn query_params<'q>(
    query: Option<&'q str>,
    known: &[&str],
    repeatable: &[&str],
) -> Result<Vec<QueryPair<'q>>, AppError> {
    let pairs: Vec<_> = url::form_urlencoded::parse(query.unwrap_or("").as_bytes()).collect();
    for (i, (key, _)) in pairs.iter().enumerate() {
        if !known.contains(&key.as_ref()) {
            let known = match known {
                [] => "this route takes none".to_string(),
                _ => format!("use {}", known.join(", ")),
            };
            return Err(AppError::new(
                StatusCode::BAD_REQUEST,
                format!("unknown query parameter {key:?} ({known})"),
            ));
        }
        if !repeatable.contains(&key.as_ref()) && pairs[..i].iter().any(|(k, _)| k == key) {
            return Err(AppError::new(
                StatusCode::BAD_REQUEST,
                format!("query parameter {key:?} is given more than once"),
            ));
        }
    }
    Ok(pairs
        .into_iter()
        .filter(|(key, value)| !value.is_empty() || key == "after")
        .collect())
}

/// Reads `state` (repeated or comma-separated), `kind`, `queue`, `limit` and `before_id`.
fn list_params(query: Option<&str>) -> Result<JobListParams, AppError> {
    let mut params = JobListParams::default();
    let bad = |what: &str, v: &str| {
        AppError::new(
            StatusCode::BAD_REQUEST,
            format!("{what}={v:?} is not a number"),
        )
    };
    let known = ["state", "kind", "queue", "limit", "before_id"];
    for (key, value) in query_params(query, &known, &["state"])? {
        match key.as_ref() {
            "state" => {
                for s in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    params.states.push(s.parse::<JobState>()?);
                }
            }
            "kind" => {
                validate_name("kind", &value)?;
                params.kind = Some(value.into_owned());
            }
            "queue" => {
                validate_name("queue", &value)?;
                params.queue = Some(value.into_owned());
            }
            "limit" => params.limit = Some(list_limit(&value)?),
            "before_id" => {
                params.before_id = Some(value.parse().map_err(|_| bad("before_id", &value))?)
            }
            _ => {}
        }
    }
    Ok(params)
}

/// `{"jobs": [...], "next_before_id": ...}`, bounded in bytes ([`listing`]).
async fn list_jobs(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<JobPage>, AppError> {
    let params = list_params(query.as_deref())?;
    Ok(Json(
        listing::list_jobs(&state.client, params, state.config.max_list_bytes).await?,
    ))
}

async fn failed_jobs(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<JobPage>, AppError> {
    let mut params = list_params(query.as_deref())?;
    if !params.states.is_empty() {
        return Err(Error::invalid(
            "state",
            "/admin/failed lists discarded jobs; use /admin/jobs?state=...",
        )
        .into());
    }
    params.states = vec![JobState::Discarded];
    Ok(Json(
        listing::list_jobs(&state.client, params, state.config.max_list_bytes).await?,
    ))
}

async fn get_job(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Json<crate::client::JobDetail>, AppError> {
    let Path(id) = id?;
    query_params(query.as_deref(), &[], &[])?;
    match state.client.get_detail(id).await? {
        Some(job) => Ok(Json(job)),
        None => Err(Error::not_found("job", id).into()),
    }
}

/// `GET /admin/jobs/{id}/children?after_id=&limit=`: `{"children": [...], "next_after_id"}`,
/// the job's children by id after `after_id` ([`job_links`]).
async fn job_children(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, AppError> {
    job_links(&state, id?.0, true, query).await
}

/// `GET /admin/jobs/{id}/parents?after_id=&limit=`: as [`job_children`], the job's parents.
async fn job_parents(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, AppError> {
    job_links(&state, id?.0, false, query).await
}

/// A page of a job's children (or parents) by id, from the first after `after_id` (from the
/// first of all unless given), [`crate::client::DETAIL_LINKS`] unless `limit` says (at most
/// [`crate::store::MAX_LIST_LIMIT`]), bounded in bytes as the listings are, with
/// `next_after_id` while more may follow: what `GET /admin/jobs/{id}` shows only the first
/// of. 404 when there is no such job.
async fn job_links(
    state: &AppState,
    id: i64,
    children: bool,
    query: Option<String>,
) -> Result<Json<Value>, AppError> {
    // Any id: another program may have written jobs of ids below 1.
    let mut after_id = i64::MIN;
    let mut limit = crate::client::DETAIL_LINKS;
    for (key, value) in query_params(query.as_deref(), &["after_id", "limit"], &[])? {
        match key.as_ref() {
            "after_id" => match value.parse::<i64>() {
                Ok(n) => after_id = n,
                _ => {
                    return Err(AppError::new(
                        StatusCode::BAD_REQUEST,
                        format!("after_id={value:?} is not a job id"),
                    ))
                }
            },
            "limit" => limit = list_limit(&value)?.min(crate::store::MAX_LIST_LIMIT),
            _ => {}
        }
    }
    let client = &state.client;
    if client.get(id).await?.is_none() {
        return Err(Error::not_found("job", id).into());
    }
    let (links, next) = listing::page(
        listing::FETCH_ROWS as usize,
        limit as usize,
        state.config.max_list_bytes,
        Some(after_id),
        |l: &crate::store::JobLink| l.id,
        |after, want| client.links(id, children, after.unwrap_or(i64::MIN), want),
    )
    .await?;
    let key = if children { "children" } else { "parents" };
    Ok(Json(json!({ key: links, "next_after_id": next })))
}

async fn retry_job(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<JobRow>, AppError> {
    let Path(id) = id?;
    Ok(Json(state.client.retry(id).await?))
}

async fn cancel_job(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<JobRow>, AppError> {
    let Path(id) = id?;
    Ok(Json(state.client.cancel(id).await?))
}

/// `GET /admin/workflows?limit=&before_id=`: `{"workflows": [...], "next_before_id"}`, newest
/// first ([`listing::workflows_page`]): a workflow's name may be 255 control characters, 1.5 KB
/// as JSON.
async fn list_workflows(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, AppError> {
    let (before_id, limit) = page_query(query)?;
    let budget = state.config.max_list_bytes;
    let (rows, next) = listing::workflows_page(&state.client, limit, budget, before_id).await?;
    Ok(Json(json!({ "workflows": rows, "next_before_id": next })))
}

/// A listing's `limit`: a whole number of at least 1 (more than
/// [`crate::store::MAX_LIST_LIMIT`] lists that many, however large). 0 used to list one row,
/// and a negative one was called "not a number".
fn list_limit(value: &str) -> Result<u32, AppError> {
    crate::store::read_list_limit(value).ok_or_else(|| {
        AppError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "limit={value:?} is not a whole number of at least 1 (at most {} are listed)",
                crate::store::MAX_LIST_LIMIT
            ),
        )
    })
}

/// The `limit` and `before_id` of a listing's query string; anything else is refused.
fn page_query(query: Option<String>) -> Result<(Option<i64>, Option<u32>), AppError> {
    let mut limit = None;
    let mut before_id = None;
    let bad = |what: &str, v: &str| {
        AppError::new(
            StatusCode::BAD_REQUEST,
            format!("{what}={v:?} is not a number"),
        )
    };
    for (key, value) in query_params(query.as_deref(), &["limit", "before_id"], &[])? {
        match key.as_ref() {
            "limit" => limit = Some(list_limit(&value)?),
            "before_id" => before_id = Some(value.parse().map_err(|_| bad("before_id", &value))?),
            _ => {}
        }
    }
    Ok((before_id, limit))
}

/// Steps in a page of `GET /admin/workflows/{id}` unless `limit` says otherwise.
pub const DEFAULT_STEPS_PAGE: u32 = 1000;

/// Steps of the first read of a `GET /admin/workflows/{id}` page; the next reads take as many
/// as fit in what is left of the byte budget were each as large as the largest read so far,
/// at most [`MOST_STEPS_READ`]. A step may wait for 10,000 parents, so a read holds at most
/// that many steps' parents, whatever the ones before it were like.
const FIRST_STEPS_READ: u32 = 25;
/// The most steps one read of a `GET /admin/workflows/{id}` page takes.
const MOST_STEPS_READ: usize = 100;

/// `GET /admin/workflows/{id}?after_id=&limit=`: the workflow, its counts of all its steps,
/// and a page of its steps in insertion order ([`DEFAULT_STEPS_PAGE`] unless `limit` says, at
/// most [`crate::workflow::MAX_STEPS`]), with `next_after_id` to ask for the next page.
///
/// A page also stops at the byte budget of listings ([`super::HttpConfig::max_list_bytes`]; at
/// least one step is always shown): each step names every parent it waits for, up to 10,000,
/// so a page of 1,000 steps could answer 160 MB. It is read a few steps at a time for the same
/// reason ([`FIRST_STEPS_READ`], [`MOST_STEPS_READ`]).
async fn get_workflow(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Json<crate::workflow::WorkflowDetail>, AppError> {
    let Path(id) = id?;
    let page = steps_query(query)?;
    let limit = page.limit.unwrap_or(DEFAULT_STEPS_PAGE) as usize;
    let budget = state.config.max_list_bytes;
    let first = crate::workflow::StepPage {
        limit: Some((limit as u32).min(FIRST_STEPS_READ)),
        ..page
    };
    let Some(mut out) = state.client.workflow_page(id, first).await? else {
        return Err(Error::not_found("workflow", id).into());
    };
    let mut read = std::mem::take(&mut out.steps);
    let mut more = out.next_after_id.take();
    // The answer without its steps, `next_after_id` at its longest.
    let mut bytes = json_len(&out) + 24;
    let mut largest = 1;
    loop {
        for step in read {
            let size = json_len(&step) + 1;
            if !out.steps.is_empty() && bytes + size > budget {
                out.next_after_id = out.steps.last().map(|s| s.job_id);
                return Ok(Json(out));
            }
            bytes += size;
            largest = largest.max(size);
            out.steps.push(step);
        }
        let left = limit - out.steps.len();
        let Some(after_id) = more.filter(|_| left > 0) else {
            out.next_after_id = more;
            return Ok(Json(out));
        };
        let want = (budget.saturating_sub(bytes) / largest + 1).clamp(1, left.min(MOST_STEPS_READ));
        // The counts are the first read's.
        let next = crate::workflow::StepPage {
            after_id,
            offset: 0,
            limit: Some(want as u32),
            skip_counts: true,
            ..crate::workflow::StepPage::all()
        };
        match state.client.workflow_page(id, next).await? {
            Some(detail) => {
                read = detail.steps;
                more = detail.next_after_id;
            }
            // Deleted meanwhile: what was read is the page.
            None => {
                out.next_after_id = None;
                return Ok(Json(out));
            }
        }
    }
}

/// The length of `value` as JSON.
fn json_len<T: Serialize>(value: &T) -> usize {
    serde_json::to_vec(value).map_or(0, |v| v.len())
}

/// The `after_id` and `limit` of a workflow's page of steps; anything else is refused.
fn steps_query(query: Option<String>) -> Result<crate::workflow::StepPage, AppError> {
    let mut page = crate::workflow::StepPage {
        limit: Some(DEFAULT_STEPS_PAGE),
        ..Default::default()
    };
    let max = crate::workflow::MAX_STEPS as u32;
    for (key, value) in query_params(query.as_deref(), &["after_id", "limit"], &[])? {
        match key.as_ref() {
            "limit" => match value.parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) => page.limit = Some(n),
                _ => {
                    return Err(AppError::new(
                        StatusCode::BAD_REQUEST,
                        format!("limit={value:?} is not a whole number from 1 to {max}"),
                    ))
                }
            },
            "after_id" => match value.parse::<i64>() {
                Ok(n) if n >= 0 => page.after_id = n,
                _ => {
                    return Err(AppError::new(
                        StatusCode::BAD_REQUEST,
                        format!("after_id={value:?} is not a job id"),
                    ))
                }
            },
            _ => {}
        }
    }
    Ok(page)
}

/// `POST /admin/workflows/{id}/cancel`: `{"id","cancelled","cancel_requested"}`.
async fn cancel_workflow(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<crate::workflow::WorkflowCancelled>, AppError> {
    let Path(id) = id?;
    Ok(Json(state.client.cancel_workflow(id).await?))
}

/// `GET /admin/batches?limit=&before_id=`: `{"batches": [...], "next_before_id"}`, newest
/// first, as `porter batches list --json` prints them ([`listing::batches_page`]).
async fn list_batches(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, AppError> {
    let (before_id, limit) = page_query(query)?;
    let budget = state.config.max_list_bytes;
    let (rows, next) = listing::batches_page(&state.client, limit, budget, before_id).await?;
    Ok(Json(json!({ "batches": rows, "next_before_id": next })))
}

/// `GET /admin/batches/{id}`: the batch, its members by state and its callback.
async fn get_batch(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Json<crate::batch::BatchRow>, AppError> {
    let Path(id) = id?;
    query_params(query.as_deref(), &[], &[])?;
    match state.client.batch(id).await? {
        Some(b) => Ok(Json(b)),
        None => Err(Error::not_found("batch", id).into()),
    }
}

/// Queues `GET /admin/stats` names (the first by name), in its counts per queue and in its
/// unserved jobs each.
pub const STATS_QUEUES: usize = 1000;

/// `GET /admin/stats`: `porter stats --json`'s shape, bounded as the listings are: any caller
/// of `POST /admin/jobs` can name a new queue with each job. Past [`STATS_QUEUES`] queues, the
/// first by name are shown and `queues_left_out` (and `unserved_left_out`) counts the others;
/// `total` counts every job, theirs included.
async fn stats(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, AppError> {
    query_params(query.as_deref(), &[], &[])?;
    let mut stats = state.client.stats().await?;
    let queues_left_out = first_queues(&mut stats.counts.queues);
    let unserved_left_out = first_queues(&mut stats.unserved);
    let mut body = json!(stats);
    if queues_left_out + unserved_left_out > 0 {
        body["queues_left_out"] = json!(queues_left_out);
        body["unserved_left_out"] = json!(unserved_left_out);
    }
    Ok(Json(body))
}

/// Keeps the first [`STATS_QUEUES`] queues of `by_queue` (by name); answers how many went.
fn first_queues<T>(by_queue: &mut std::collections::BTreeMap<String, T>) -> usize {
    let Some(cut) = by_queue.keys().nth(STATS_QUEUES).cloned() else {
        return 0;
    };
    by_queue.split_off(&cut).len()
}

/// A queue as the admin API shows it.
#[derive(Serialize)]
struct QueueView {
    name: String,
    paused: bool,
    paused_at: Option<DateTime<Utc>>,
    limits: crate::store::QueueLimits,
}

impl From<QueueRow> for QueueView {
    fn from(q: QueueRow) -> Self {
        QueueView {
            paused: q.paused_at.is_some(),
            name: q.name,
            paused_at: q.paused_at,
            limits: q.limits,
        }
    }
}

/// The body of `POST /admin/queues/{name}/limit`: the limits to set (rates as `N/DURATION`),
/// or `clear` to remove every limit first.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitBody {
    #[serde(default)]
    clear: bool,
    concurrency: Option<i64>,
    per_key: Option<i64>,
    rate: Option<String>,
    rate_per_key: Option<String>,
}

async fn limit_queue(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<QueueView>, AppError> {
    let Path(name) = name?;
    let body: LimitBody = json_body::<_, AppError>(&headers, body)?;
    let count = |what: &'static str, n: Option<i64>| -> crate::Result<Option<u32>> {
        n.map(|n| crate::store::limits::check_limit(what, n).map(|()| n as u32))
            .transpose()
    };
    let rate = |what: &'static str, r: Option<String>| -> crate::Result<_> {
        r.map(|r| crate::store::Rate::parse(what, &r)).transpose()
    };
    let params = crate::store::QueueLimitParams {
        queue: name,
        clear: body.clear,
        set: crate::store::QueueLimits {
            concurrency: count("concurrency", body.concurrency)?,
            per_key: count("per_key", body.per_key)?,
            rate: rate("rate", body.rate)?,
            rate_per_key: rate("rate_per_key", body.rate_per_key)?,
        },
    };
    Ok(Json(state.client.queue_limit(params).await?.into()))
}

/// `GET /admin/queues?limit=&after=`: a page of the queues in name order, bounded in bytes
/// as the other listings are, with `next_after` (the last name shown) while more may follow.
/// `after` is a cursor, any text: another program may have named a queue porter would refuse.
async fn list_queues(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, AppError> {
    let mut limit = None;
    let mut after = None;
    for (key, value) in query_params(query.as_deref(), &["limit", "after"], &[])? {
        match key.as_ref() {
            "limit" => limit = Some(list_limit(&value)?),
            // Empty too: another program may have named a queue with the empty string.
            "after" => after = Some(value.into_owned()),
            _ => {}
        }
    }
    let client = &state.client;
    // Each read lists the queues that only jobs name from every job: a page is read a
    // thousand queues at a time rather than fifty.
    let (queues, next) = listing::page(
        crate::store::QUEUE_PAGE as usize,
        crate::store::list_page_size(limit) as usize,
        state.config.max_list_bytes,
        after,
        |q: &QueueView| q.name.clone(),
        |after, want| async move {
            let page = client.queue_page(after, want).await?;
            Ok(page.into_iter().map(QueueView::from).collect())
        },
    )
    .await?;
    Ok(Json(json!({ "queues": queues, "next_after": next })))
}

async fn pause_queue(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, AppError> {
    let Path(name) = name?;
    state.client.queue_pause(&name).await?;
    Ok(Json(json!({ "queue": name, "paused": true })))
}

async fn resume_queue(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, AppError> {
    let Path(name) = name?;
    state.client.queue_resume(&name).await?;
    Ok(Json(json!({ "queue": name, "paused": false })))
}
