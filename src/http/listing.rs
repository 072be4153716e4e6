//! Listings bounded in bytes as well as rows: `GET /admin/jobs`, `GET /admin/failed`, the
//! dashboard's job tables, `porter jobs list` and `porter list-failed-jobs` all list through
//! [`list_jobs`]; workflows and batches list through [`workflows_page`] and [`batches_page`],
//! and `GET /admin/queues` (by name, `after` and `next_after`) pages through `page` as they do.
//!
//! * In a list, a job's args (and metadata) over [`LIST_ARGS_MAX_BYTES`] as JSON are replaced
//!   by a marker object, `{"truncated": true, "bytes": N}` (N: their full size), so the list
//!   stays valid JSON; each error text and trace is cut to [`LIST_ERROR_MAX_CHARS`]
//!   characters, with a note of its full size, and only the last [`LIST_ERRORS_KEPT`] errors
//!   are kept. `GET /admin/jobs/{id}` and `porter jobs show` return the job whole.
//! * A page stops when the next job would take it past its byte budget (4 MiB by default,
//!   [`LIST_BYTES_BUDGET`]; at least one job is always listed), or at its row limit. When more
//!   jobs may follow, `next_before_id` says where the next page starts (pass it as
//!   `before_id`); it is `null` when the listing is complete.
//! * Rows are read from the database a few at a time ([`FETCH_ROWS`]), so the process never
//!   holds more than a few jobs' whole args, whatever the `limit`.

use serde::Serialize;

use crate::batch::BatchRow;
use crate::client::Client;
use crate::error::Result;
use crate::job::JobRow;
use crate::store::{json_size, JobListParams};
use crate::workflow::WorkflowRow;

/// Args (or metadata) larger than this, as JSON, are shown in lists as a marker: 2 KiB.
pub const LIST_ARGS_MAX_BYTES: usize = 2048;
/// Longest error text (and trace) shown in lists, in characters.
pub const LIST_ERROR_MAX_CHARS: usize = 2000;
/// Errors of one job kept in lists: the last ones.
pub const LIST_ERRORS_KEPT: usize = 10;
/// Default byte budget of one page: 4 MiB.
pub const LIST_BYTES_BUDGET: usize = 4 * 1024 * 1024;
/// Rows read from the database at a time.
pub const FETCH_ROWS: u32 = 50;

/// One page of a listing: `{"jobs": [...], "next_before_id": ID | null}`.
#[derive(Debug, Clone, Serialize)]
pub struct JobPage {
    /// The jobs, newest first, cut for listing.
    pub jobs: Vec<JobRow>,
    /// Where the next page starts (`before_id`), when more jobs may follow.
    pub next_before_id: Option<i64>,
}

/// The marker that stands for large args in a list.
fn marker(bytes: usize) -> serde_json::Value {
    serde_json::json!({ "truncated": true, "bytes": bytes })
}

fn cut_text(text: &mut String) {
    if text.len() <= LIST_ERROR_MAX_CHARS {
        return;
    }
    if let Some((at, _)) = text.char_indices().nth(LIST_ERROR_MAX_CHARS) {
        let full = text.len();
        text.truncate(at);
        text.push_str(&format!(
            " … ({full} bytes in all; the job itself has the whole text)"
        ));
    }
}

/// A job as lists show it: large args and metadata replaced by a marker, errors cut.
pub fn for_listing(mut job: JobRow) -> JobRow {
    for value in [&mut job.args, &mut job.metadata] {
        let size = json_size(value, usize::MAX);
        if size > LIST_ARGS_MAX_BYTES {
            *value = marker(size);
        }
    }
    if job.errors.len() > LIST_ERRORS_KEPT {
        job.errors.drain(..job.errors.len() - LIST_ERRORS_KEPT);
    }
    for e in &mut job.errors {
        cut_text(&mut e.error);
        if let Some(trace) = &mut e.trace {
            cut_text(trace);
        }
    }
    job
}

/// Lists jobs like [`Client::list`], bounded by `budget` bytes of JSON as well as by the
/// row limit, each job cut by [`for_listing`]. See the module docs.
pub async fn list_jobs(client: &Client, params: JobListParams, budget: usize) -> Result<JobPage> {
    let limit = params.effective_limit() as usize;
    let (jobs, next_before_id) = page(
        FETCH_ROWS as usize,
        limit,
        budget,
        params.before_id,
        |j: &JobRow| j.id,
        |before_id, want| {
            let params = JobListParams {
                before_id,
                limit: Some(want),
                ..params.clone()
            };
            async move {
                Ok(client
                    .list(params)
                    .await?
                    .into_iter()
                    .map(for_listing)
                    .collect())
            }
        },
    )
    .await?;
    Ok(JobPage {
        jobs,
        next_before_id,
    })
}

/// A page of workflows, newest first, bounded in bytes as the job listing is: at most `limit`
/// (100 by default, as every listing), and where the next page starts when more may follow.
/// `GET /admin/workflows`, `/dashboard/workflows` and `porter workflows list` list through it.
pub async fn workflows_page(
    client: &Client,
    limit: Option<u32>,
    budget: usize,
    before_id: Option<i64>,
) -> Result<(Vec<WorkflowRow>, Option<i64>)> {
    newest_first(
        limit,
        budget,
        before_id,
        |w: &WorkflowRow| w.id,
        |before, want| client.workflows(before, Some(want)),
    )
    .await
}

/// A page of batches as [`workflows_page`] gives workflows: `GET /admin/batches`,
/// `/dashboard/batches` and `porter batches list`.
pub async fn batches_page(
    client: &Client,
    limit: Option<u32>,
    budget: usize,
    before_id: Option<i64>,
) -> Result<(Vec<BatchRow>, Option<i64>)> {
    newest_first(
        limit,
        budget,
        before_id,
        |b: &BatchRow| b.id,
        |before, want| client.batches(before, Some(want)),
    )
    .await
}

/// A page of a listing newest first by id, read [`FETCH_ROWS`] at a time ([`page`]).
async fn newest_first<T, Read, Rows>(
    limit: Option<u32>,
    budget: usize,
    before_id: Option<i64>,
    id: impl Fn(&T) -> i64,
    read: Read,
) -> Result<(Vec<T>, Option<i64>)>
where
    T: Serialize,
    Read: FnMut(Option<i64>, u32) -> Rows,
    Rows: std::future::Future<Output = Result<Vec<T>>>,
{
    let limit = crate::store::list_page_size(limit) as usize;
    page(FETCH_ROWS as usize, limit, budget, before_id, id, read).await
}

/// Most rows of one key (as read) that a listing reads past: beyond, it ends there.
const MOST_OF_ONE_KEY: usize = 100_000;

/// One page of a listing in its order (newest first by id, or queues by name), from the key
/// `before_id` on, read `read(before_id, rows)` up to `fetch` rows at a time ([`FETCH_ROWS`],
/// or more where rows are small and each read costs a scan: the queues', read from every job):
/// at most `limit` rows, and stopped before the row that would take it past `budget` bytes as
/// JSON (at least one row is always listed). Answers the rows and where the next page starts
/// (the last row's key) when more may follow: the page was cut, or a row after it was read.
///
/// A row whose key is the one before it (the cursor's, or the last row's) is left out, and a
/// read that brings nothing else is made again for that many rows more: a key the database
/// orders otherwise than it reads (text that is not UTF-8, read with U+FFFD, so that several
/// names read the same) can then neither make the listing read the same rows for ever nor end
/// it before the names after them (up to [`MOST_OF_ONE_KEY`] rows of one key).
pub(crate) async fn page<T, K, Read, Rows>(
    fetch: usize,
    limit: usize,
    budget: usize,
    before_id: Option<K>,
    id: impl Fn(&T) -> K,
    mut read: Read,
) -> Result<(Vec<T>, Option<K>)>
where
    T: Serialize,
    K: Clone + PartialEq,
    Read: FnMut(Option<K>, u32) -> Rows,
    Rows: std::future::Future<Output = Result<Vec<T>>>,
{
    let mut out: Vec<T> = Vec::new();
    // `{"jobs":[],"next_before_id":-9223372036854775808}`, or a longer key.
    let mut bytes = 64;
    let mut before = before_id;
    // Rows of the cursor's own key the last read brought (and nothing else): read past them.
    let mut same = 0;
    loop {
        // One row more than the page needs, to know whether another page follows.
        let want = ((limit - out.len() + 1).min(fetch.max(1)) + same) as u32;
        let rows = read(before.clone(), want).await?;
        let got = rows.len();
        let mut kept = 0;
        for row in rows {
            // A row that reads as the key before it (the cursor's, or the last one listed).
            let key = id(&row);
            if before.as_ref() == Some(&key) {
                continue;
            }
            kept += 1;
            let size = serde_json::to_vec(&row).map(|v| v.len()).unwrap_or(0) + 1;
            if out.len() == limit || (!out.is_empty() && bytes + size > budget) {
                let next = out.last().map(&id);
                return Ok((out, next));
            }
            bytes += size;
            before = Some(key);
            out.push(row);
        }
        if got < want as usize || (kept == 0 && got >= MOST_OF_ONE_KEY) {
            return Ok((out, None));
        }
        same = if kept == 0 { got } else { 0 };
    }
}
