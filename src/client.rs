//! The client: insert typed jobs (one, many, or inside the caller's transaction), manage them
//! (get, list, cancel, retry, counts), and run the queue's operations (queues, pause, resume,
//! workers). The CLI, the admin API, the dashboard and the metrics go through it, as an
//! application does; none of them calls the store underneath.

use std::sync::Arc;

use crate::batch::{Batch, BatchInserted, BatchRow};
use crate::error::Result;
use crate::job::{InsertOpts, JobArgs, JobRow};
use crate::store::{
    Backend, BulkAction, BulkOutcome, InsertResult, JobCounts, JobFilter, JobInsertParams,
    JobListParams, JobSearchParams, MatchCount, PeriodicRow, QueueLimitParams, QueueRow, Store,
    ThroughputRow, WorkerRow,
};
use crate::workflow::{
    StepPage, Workflow, WorkflowCancelled, WorkflowDetail, WorkflowInserted, WorkflowRow,
};

/// Inserts and manages jobs. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    store: Arc<Store>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("backend", &self.store.backend())
            .finish()
    }
}

/// Validated insert params for typed args: the args' own options, overridden by `opts`.
pub fn insert_params<A: JobArgs>(args: &A, opts: Option<InsertOpts>) -> Result<JobInsertParams> {
    let value = crate::job::to_json(args).map_err(|e| crate::Error::invalid("args", e))?;
    let merged = match opts {
        Some(o) => o.over(args.insert_opts()),
        None => args.insert_opts(),
    };
    JobInsertParams::new(A::KIND, value, merged)
}

impl Client {
    /// A client over a store.
    pub fn new(store: Arc<Store>) -> Self {
        Client { store }
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Inserts one typed job.
    pub async fn insert<A: JobArgs>(
        &self,
        args: &A,
        opts: Option<InsertOpts>,
    ) -> Result<InsertResult> {
        let params = insert_params(args, opts)?;
        Ok(self.store.job_insert_many(vec![params]).await?.remove(0))
    }

    /// Inserts many typed jobs in one transaction.
    pub async fn insert_many<'a, A: JobArgs>(
        &self,
        jobs: impl IntoIterator<Item = (&'a A, Option<InsertOpts>)>,
    ) -> Result<Vec<InsertResult>> {
        let params = jobs
            .into_iter()
            .map(|(a, o)| insert_params(a, o))
            .collect::<Result<Vec<_>>>()?;
        self.store.job_insert_many(params).await
    }

    /// Inserts jobs already checked into params ([`JobInsertParams::new`]) in one transaction,
    /// in order.
    pub async fn insert_many_params(
        &self,
        params: Vec<JobInsertParams>,
    ) -> Result<Vec<InsertResult>> {
        self.store.job_insert_many(params).await
    }

    /// Inserts a job by kind name with JSON args (the CLI and HTTP path).
    pub async fn insert_raw(
        &self,
        kind: &str,
        args: serde_json::Value,
        opts: InsertOpts,
    ) -> Result<InsertResult> {
        let params = JobInsertParams::new(kind, args, opts)?;
        Ok(self.store.job_insert_many(vec![params]).await?.remove(0))
    }

    /// Inserts typed jobs on a caller's SQLite connection, inside the transaction it has open:
    /// they exist if and only if that transaction commits.
    pub fn insert_tx_sqlite<A: JobArgs>(
        conn: &rusqlite::Connection,
        args: &A,
        opts: Option<InsertOpts>,
    ) -> Result<InsertResult> {
        let params = insert_params(args, opts)?;
        Ok(crate::store::sqlite::job_insert_tx(conn, std::slice::from_ref(&params))?.remove(0))
    }

    /// Inserts typed jobs inside a caller's PostgreSQL transaction: they exist if and only if
    /// it commits (and producers are notified when it does).
    #[cfg(feature = "postgres")]
    pub async fn insert_tx_pg<A: JobArgs>(
        conn: &mut sqlx::PgConnection,
        args: &A,
        opts: Option<InsertOpts>,
    ) -> Result<InsertResult> {
        let params = insert_params(args, opts)?;
        Ok(crate::store::postgres::job_insert_tx(conn, vec![params])
            .await?
            .remove(0))
    }

    /// Inserts a workflow: every step in one transaction, or none of them (see
    /// [`crate::workflow`]). Returns its id and its steps' jobs.
    pub async fn insert_workflow(&self, workflow: Workflow) -> Result<WorkflowInserted> {
        self.store.workflow_insert(workflow.params()?).await
    }

    /// Inserts a workflow on a caller's SQLite connection, inside the transaction it has open:
    /// it exists if and only if that transaction commits (a refused workflow leaves nothing
    /// in it).
    pub fn insert_workflow_tx_sqlite(
        conn: &rusqlite::Connection,
        workflow: Workflow,
    ) -> Result<WorkflowInserted> {
        crate::store::sqlite::workflow_insert_tx(conn, &workflow.params()?)
    }

    /// Inserts a workflow inside a caller's PostgreSQL transaction: it exists if and only if
    /// it commits (a refused workflow leaves nothing in it).
    #[cfg(feature = "postgres")]
    pub async fn insert_workflow_tx_pg(
        conn: &mut sqlx::PgConnection,
        workflow: Workflow,
    ) -> Result<WorkflowInserted> {
        crate::store::postgres::workflow_insert_tx(conn, &workflow.params()?).await
    }

    /// Workflows newest first (`porter workflows list`), a page at a time (`before_id`).
    pub async fn workflows(
        &self,
        before_id: Option<i64>,
        limit: Option<u32>,
    ) -> Result<Vec<WorkflowRow>> {
        self.store.workflow_list(before_id, limit).await
    }

    /// The workflow a job is a step of (id, name, step name); `None` for a job of no workflow.
    pub async fn job_workflow(
        &self,
        id: i64,
    ) -> Result<Option<crate::store::workflow::JobWorkflow>> {
        self.store.job_workflow(id).await
    }

    /// One workflow with its steps (`porter workflows show`).
    pub async fn workflow(&self, id: i64) -> Result<Option<WorkflowDetail>> {
        self.store.workflow_get(id).await
    }

    /// One workflow with a page of its steps, in insertion order (`GET
    /// /admin/workflows/{id}?after_id=&limit=`): its counts are of all its steps, and
    /// `next_after_id` is where the next page starts, when one follows.
    pub async fn workflow_page(&self, id: i64, page: StepPage) -> Result<Option<WorkflowDetail>> {
        self.store.workflow_page(id, page).await
    }

    /// Cancels a workflow's unfinished steps; running ones are asked to stop
    /// (`porter workflows cancel`).
    pub async fn cancel_workflow(&self, id: i64) -> Result<WorkflowCancelled> {
        self.store.workflow_cancel(id).await
    }

    /// Inserts a batch: its jobs and its callback in one transaction, or nothing (see
    /// [`crate::batch`]).
    pub async fn insert_batch(&self, batch: Batch) -> Result<BatchInserted> {
        self.store.batch_insert(batch.params()?).await
    }

    /// Inserts a batch on a caller's SQLite connection, inside the transaction it has open.
    pub fn insert_batch_tx_sqlite(
        conn: &rusqlite::Connection,
        batch: Batch,
    ) -> Result<BatchInserted> {
        crate::store::sqlite::batch_insert_tx(conn, &batch.params()?)
    }

    /// Inserts a batch inside a caller's PostgreSQL transaction.
    #[cfg(feature = "postgres")]
    pub async fn insert_batch_tx_pg(
        conn: &mut sqlx::PgConnection,
        batch: Batch,
    ) -> Result<BatchInserted> {
        crate::store::postgres::batch_insert_tx(conn, &batch.params()?).await
    }

    /// Batches newest first (`porter batches list`), a page at a time (`before_id`).
    pub async fn batches(
        &self,
        before_id: Option<i64>,
        limit: Option<u32>,
    ) -> Result<Vec<BatchRow>> {
        self.store.batch_list(before_id, limit).await
    }

    /// One batch (`porter batches show`).
    pub async fn batch(&self, id: i64) -> Result<Option<BatchRow>> {
        self.store.batch_get(id).await
    }

    /// One job.
    pub async fn get(&self, id: i64) -> Result<Option<JobRow>> {
        self.store.job_get(id).await
    }

    /// One job with its parents and children (the first [`DETAIL_LINKS`] of each, and how
    /// many there are), its workflow and its batch (`GET /admin/jobs/{id}`).
    pub async fn get_detail(&self, id: i64) -> Result<Option<JobDetail>> {
        self.get_detail_links(id, Some(DETAIL_LINKS)).await
    }

    /// [`Client::get_detail`] with the first `links` parents and children, or all of them
    /// when `None` (`porter jobs show`).
    pub async fn get_detail_links(&self, id: i64, links: Option<u32>) -> Result<Option<JobDetail>> {
        let Some(job) = self.store.job_get(id).await? else {
            return Ok(None);
        };
        let deps = match links {
            Some(n) => self.store.job_deps_first(id, n).await?,
            None => self.store.job_deps(id).await?,
        };
        let workflow = self.store.job_workflow(id).await?;
        Ok(Some(JobDetail {
            job,
            parents: deps.parents,
            children: deps.children,
            parents_total: deps.parents_total,
            children_total: deps.children_total,
            workflow,
            batch: deps.batch,
        }))
    }

    /// A page of a job's children (`children`) or parents, by id after `after_id`.
    pub async fn links(
        &self,
        id: i64,
        children: bool,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<crate::store::JobLink>> {
        self.store.job_links(id, children, after_id, limit).await
    }

    /// Jobs, newest first.
    pub async fn list(&self, params: JobListParams) -> Result<Vec<JobRow>> {
        self.store.job_list(params).await
    }

    /// Cancels an unfinished job.
    pub async fn cancel(&self, id: i64) -> Result<JobRow> {
        self.store.job_cancel(id).await
    }

    /// Makes a job that is not running available again (`pending` while it must wait: a
    /// finished job of a busy sequence, a child whose parents have not all ended).
    pub async fn retry(&self, id: i64) -> Result<JobRow> {
        self.store.job_retry(id).await
    }

    /// Counts by queue and state.
    pub async fn counts(&self) -> Result<JobCounts> {
        self.store.job_counts().await
    }

    /// Failed jobs: the discarded ones matching the other filters, newest first, each with its
    /// error history (what `porter list-failed-jobs` and `GET /admin/failed` show).
    pub async fn failed(&self, params: JobListParams) -> Result<Vec<JobRow>> {
        self.store
            .job_list(JobListParams {
                states: vec![crate::job::JobState::Discarded],
                ..params
            })
            .await
    }

    /// Per queue with jobs due to run: how many, and how long the oldest has been due (what
    /// `/metrics` reports as depth and lag).
    pub async fn queue_lag(&self) -> Result<Vec<crate::store::QueueLag>> {
        self.store.queue_lag().await
    }

    /// Queues that have jobs or a pause record.
    pub async fn queue_list(&self) -> Result<Vec<QueueRow>> {
        self.store.queue_list().await
    }

    /// Up to `limit` queues in name order after `after` (see [`Store::queue_page`]).
    pub async fn queue_page(&self, after: Option<String>, limit: u32) -> Result<Vec<QueueRow>> {
        self.store.queue_page(after, limit).await
    }

    /// Pauses a queue: its jobs are not claimed until it is resumed.
    pub async fn queue_pause(&self, queue: &str) -> Result<()> {
        self.store.queue_pause(queue).await
    }

    /// Resumes a paused queue.
    pub async fn queue_resume(&self, queue: &str) -> Result<()> {
        self.store.queue_resume(queue).await
    }

    /// Sets a queue's limits (`porter queues limit`): global and per-key concurrency, rate and
    /// per-key rate; `clear` removes every limit first. Returns the queue as it is now.
    pub async fn queue_limit(&self, params: QueueLimitParams) -> Result<QueueRow> {
        self.store.queue_limit_set(params).await
    }

    /// Per queue with limits, how many available due jobs wait because of a limit.
    pub async fn queue_limit_waiting(&self) -> Result<std::collections::BTreeMap<String, i64>> {
        self.store.queue_limit_waiting().await
    }

    /// Registered worker processes.
    pub async fn worker_list(&self) -> Result<Vec<WorkerRow>> {
        self.store.worker_list().await
    }

    /// Jobs nobody will run as things stand: per queue and kind, the jobs due to run that no
    /// live worker serves (see [`Store::job_unserved`](crate::Store::job_unserved)).
    pub async fn unserved(&self) -> Result<Vec<crate::store::UnservedRow>> {
        self.store.job_unserved().await
    }

    /// What `porter stats` shows: the job counts by queue and state, and the jobs due to run
    /// that no live worker serves.
    pub async fn stats(&self) -> Result<crate::store::Stats> {
        let counts = self.counts().await?;
        let unserved = self.unserved().await?;
        Ok(crate::store::Stats {
            counts,
            unserved: crate::store::unserved_by_queue(&unserved),
        })
    }

    /// Whether a live worker serves this queue and kind (what `porter enqueue` warns about
    /// when none does).
    pub async fn served(&self, queue: &str, kind: &str) -> Result<bool> {
        Ok(self.store.worker_count_serving(queue, kind).await? > 0)
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        self.store.ping().await
    }

    /// Which backend the store runs on.
    pub fn backend(&self) -> Backend {
        self.store.backend()
    }

    /// The database's clock.
    pub async fn now(&self) -> Result<chrono::DateTime<chrono::Utc>> {
        self.store.now().await
    }

    /// Jobs a filter matches (args search included), newest first, a page at a time
    /// (`before_id`).
    pub async fn search(&self, params: JobSearchParams) -> Result<Vec<JobRow>> {
        self.store.job_search(params).await
    }

    /// How many jobs a filter matches, and the highest id among them.
    pub async fn count_matching(&self, filter: JobFilter) -> Result<MatchCount> {
        self.store.job_count_matching(filter).await
    }

    /// Retries, cancels or deletes every job a filter matches, up to `max_id` (see
    /// [`Store::job_bulk`]; an error part-way says what was done before it).
    pub async fn bulk(
        &self,
        action: BulkAction,
        filter: JobFilter,
        fence: impl Into<crate::store::BulkFence>,
    ) -> std::result::Result<BulkOutcome, crate::store::BulkError> {
        self.store.job_bulk(action, filter, fence).await
    }

    /// Running jobs per worker id.
    pub async fn running_by_worker(&self) -> Result<std::collections::BTreeMap<String, i64>> {
        self.store.job_running_by_worker().await
    }

    /// The periodic schedules' records, each with the job of its last slot.
    pub async fn periodic_list(&self) -> Result<Vec<PeriodicRow>> {
        self.store.periodic_list().await
    }

    /// Completed and discarded jobs per minute finished at or after `since`.
    pub async fn throughput(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<ThroughputRow>> {
        self.store.job_throughput(since).await
    }
}

/// Parents or children [`Client::get_detail`] lists at most, each (`GET /admin/jobs/{id}`);
/// `parents_total` and `children_total` count them all.
pub const DETAIL_LINKS: u32 = 1000;

/// One job as `porter jobs show --json` and `GET /admin/jobs/{id}` give it: the job row's
/// fields, and its parents and children (empty when it has none).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JobDetail {
    /// The job, with its output and progress.
    #[serde(flatten)]
    pub job: JobRow,
    /// Jobs it waits (or waited) for, by id: the first [`DETAIL_LINKS`] (or as many as
    /// asked for, see [`Client::get_detail_links`]).
    pub parents: Vec<crate::store::JobLink>,
    /// Jobs that wait (or waited) for it, by id, bounded as `parents` is.
    pub children: Vec<crate::store::JobLink>,
    /// How many parents it has in all.
    #[serde(default)]
    pub parents_total: i64,
    /// How many children it has in all.
    #[serde(default)]
    pub children_total: i64,
    /// The workflow it is a step of (`null` when none).
    #[serde(default)]
    pub workflow: Option<crate::store::workflow::JobWorkflow>,
    /// The batch it is a member or the callback of (`null` when none).
    #[serde(default)]
    pub batch: Option<crate::store::JobBatch>,
}
