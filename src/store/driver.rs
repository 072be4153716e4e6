//! The driver: the seam between the queue and one database, SQL and row mapping only.
//!
//! A [`Driver`] runs statements and maps rows; it decides nothing. What a result *means* (a
//! fenced write that changed no row, a user's write on a job that is gone or final, the order
//! of claimed jobs, which producers to wake) is decided once, above every driver, by
//! [`Store`](super::Store). Each backend (`sqlite/`, `postgres/`) implements this trait with the
//! same meaning, and the conformance suite runs against both through [`Store`](super::Store).
//!
//! This is an internal seam, documented so that the backends stay alike; it may change between
//! releases. Methods are named noun first (`job_claim`, `queue_pause`) and take one params struct
//! where they take more than one value.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::*;
use crate::error::Result;
use crate::job::JobRow;

/// One database's statements. See the module docs.
#[async_trait::async_trait]
pub trait Driver: Send + Sync + 'static {
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// In-process wake-ups. The driver feeds it what other processes did where the backend can
    /// tell (NOTIFY on PostgreSQL, `PRAGMA data_version` on SQLite); [`Store`](super::Store)
    /// wakes this process's producers after its own writes.
    fn wakeup(&self) -> &Arc<Wakeup>;

    /// The database's clock.
    async fn now(&self) -> Result<DateTime<Utc>>;

    /// Whether the database answers.
    async fn ping(&self) -> Result<()>;

    /// Why this process's database is gone for good, if it is: on SQLite, the file (or its
    /// WAL) was deleted or replaced under the running process, so its writes would go where
    /// nobody reads them (commits are refused from then on). `None` on PostgreSQL, whose
    /// outages pass.
    async fn file_replaced(&self) -> Option<String> {
        None
    }

    /// The database under this driver, for an application's own SQL (see [`Database`]);
    /// `None` for a driver that has none to give (a test double, say).
    fn database(&self) -> Option<Database<'_>> {
        None
    }

    /// Inserts jobs in one transaction, in order. A job whose unique key is held by an
    /// unfinished job is not inserted; that job is returned with `inserted = false`.
    async fn job_insert_many(&self, jobs: Vec<JobInsertParams>) -> Result<Vec<InsertResult>>;

    /// Inserts a workflow (its row, then its steps in order, each step's placeholders
    /// replaced by the ids of the steps it waits for, then each job tagged with the workflow
    /// and its step) in one transaction: all of it, or nothing (a step whose unique key is
    /// held is [`Error::Conflict`](crate::Error::Conflict)).
    async fn workflow_insert(&self, params: WorkflowInsertParams) -> Result<WorkflowInserted>;

    /// Workflows newest first: below `before_id`, at most `limit`, each with its steps'
    /// counts by state.
    async fn workflow_list(&self, before_id: Option<i64>, limit: u32) -> Result<Vec<WorkflowRow>>;

    /// One workflow's row and counts by state, and the jobs (by id) of `page` with their
    /// edges; `None` when there is no such workflow.
    async fn workflow_get(&self, id: i64, page: StepPage) -> Result<Option<WorkflowParts>>;

    /// The workflow a job is a step of (its id, name, and the step's name); `None` for a job
    /// of no workflow, or no such job.
    async fn job_workflow(&self, id: i64) -> Result<Option<workflow::JobWorkflow>>;

    /// Cancels every unfinished job of a workflow in one transaction, as
    /// [`Driver::job_cancel`] does each (pending ones included; a running one is asked to stop,
    /// its worker told at commit where the backend can). `None` when there is no such
    /// workflow.
    async fn workflow_cancel(&self, id: i64) -> Result<Option<Vec<JobChange>>>;

    /// Inserts a batch (its row, its members, then its callback waiting for every member,
    /// each job tagged with the batch) in one transaction: all of it, or nothing.
    async fn batch_insert(&self, params: BatchInsertParams) -> Result<BatchInserted>;

    /// Batches newest first (below `before_id`, at most `limit`), or only batch `only`, each
    /// with its members' counts by state and its callback.
    async fn batch_list(
        &self,
        before_id: Option<i64>,
        limit: u32,
        only: Option<i64>,
    ) -> Result<Vec<BatchRow>>;

    /// One job by id, with what it recorded (output, progress), read at one moment.
    async fn job_get(&self, id: i64) -> Result<Option<JobRow>>;

    /// Jobs matching the filters, newest (highest id) first.
    async fn job_list(&self, params: JobListParams) -> Result<Vec<JobRow>>;

    /// Job counts by queue and state (only the pairs that have jobs).
    async fn job_counts(&self) -> Result<Vec<JobCountRow>>;

    /// Claims up to `limit` due jobs of one queue (unless it is paused) for a worker, in any
    /// order: they become `running` with `attempt + 1`. Scheduled and retryable jobs that are
    /// due are made available first. Never called with a zero limit or no kinds.
    ///
    /// A queue with limits ([`QueueLimits`]) takes no more than they allow, decided in one
    /// transaction that no other claim of the queue interleaves with, in any process: running
    /// jobs of the queue (and of each concurrency key) are counted, starts within each rate
    /// window too (a start of a rate-limited queue is recorded), and jobs of keys at their
    /// limit are skipped, not waited behind. `held_back` says whether due jobs were left
    /// because of a limit. A queue without limits pays one extra condition on its queue row.
    ///
    /// `ahead` says how many of the jobs asked for would wait for a slot. A queue with a rate
    /// limit takes none of those. One with a global concurrency limit takes them only while
    /// the producer's waiting jobs stay within half of the room the limit leaves it (the room
    /// of the limit not used by other running jobs, less the jobs for its free slots; the
    /// worker's own running rows neither waiting nor in a slot, finished with their outcome
    /// being written, are counted by the claim itself and not as using that room).
    async fn job_claim(&self, params: JobClaimParams, ahead: ClaimAhead) -> Result<JobClaimed>;

    /// Completes jobs (fenced); returns the fences whose rows changed, in any order. Never
    /// called with no fences.
    async fn job_complete_many(&self, fences: Vec<JobFence>) -> Result<Vec<JobFence>>;

    /// [`Driver::job_complete_many`] and then the plain claim of each of `claims` (which takes
    /// nothing from a paused queue or one with limits), in one call: jobs the completions made
    /// available are claimed right after them, in the same transaction where the backend's
    /// clock allows it (SQLite), else in the next statements on the same connection.
    /// Returns the fences whose rows changed, in any order, and each claim's jobs, in the
    /// order of `claims`. Once the completions are committed, a claim that fails takes nothing
    /// (an empty list) rather than failing the call. Never called with no fences, nor with a zero limit or no kinds.
    async fn job_complete_claim(
        &self,
        fences: Vec<JobFence>,
        claims: Vec<JobClaimParams>,
    ) -> Result<(Vec<JobFence>, Vec<Vec<JobRow>>)>;

    /// Records a failed attempt (fenced): retryable after `retry_in`, or discarded when the
    /// attempts are used up or `discard` is set. The error joins the history. `None` when the
    /// fence matched no row.
    async fn job_fail(&self, params: JobFailParams) -> Result<Option<JobRow>>;

    /// Puts a running job back to `scheduled` after a delay without using an attempt (fenced).
    /// `None` when the fence matched no row.
    async fn job_snooze(&self, params: JobSnoozeParams) -> Result<Option<JobRow>>;

    /// Records a running job's output and/or progress (fenced): the ones given replace the
    /// stored ones. False when the fence matched no row (nothing written).
    async fn job_output_record(&self, params: JobRecordParams) -> Result<bool>;

    /// What these jobs recorded (output, progress); jobs that recorded nothing are left out.
    async fn job_output_get(&self, ids: Vec<i64>) -> Result<Vec<(i64, JobOutput)>>;

    /// A job's parents, by id, each with the output it recorded (`None` for none), read at
    /// one moment (one statement).
    async fn job_parent_outputs(
        &self,
        id: i64,
    ) -> Result<Vec<(JobLink, Option<serde_json::Value>)>>;

    /// A job's parents and children, by id: the first `limit` of each (all when `None`), and
    /// how many of each it has.
    async fn job_deps(&self, id: i64, limit: Option<u32>) -> Result<JobDeps>;

    /// A page of a job's children (`children`) or parents: by id after `after_id`, at most
    /// `limit`.
    async fn job_links(
        &self,
        id: i64,
        children: bool,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<JobLink>>;

    /// The jobs the database says a worker runs (state `running`, `attempted_by` = the
    /// worker) that it claimed at `since` or later (`attempted_at`), as fences.
    async fn job_list_running(
        &self,
        worker_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<JobFence>>;

    /// Gives a running job back (fenced): `available` again at once, and the attempt does not
    /// count toward `max_attempts` (which grows by one). The reason joins the error history.
    /// Other processes' producers are woken at commit where the backend can. `None` when the
    /// fence matched no row.
    async fn job_release(&self, params: JobReleaseParams) -> Result<Option<JobRow>>;

    /// A running job cancels itself (fenced), with a reason kept in its error history. `None`
    /// when the fence matched no row.
    async fn job_cancel_running(&self, params: JobCancelRunningParams) -> Result<Option<JobRow>>;

    /// A user cancels a job that has not finished: cancelled at once unless it runs; a running
    /// one stays `running` with the request in its metadata
    /// ([`crate::job::CANCEL_REQUESTED_AT`]), and its worker's process is told at commit where
    /// the backend can (NOTIFY). `None` when no unfinished job has the id.
    async fn job_cancel(&self, id: i64) -> Result<Option<JobRow>>;

    /// Of the jobs `among` (by id: those the worker holds), the running ones of that worker that
    /// a user asked to cancel, as their fences, by id. Looked up by id, so the look costs what
    /// the worker holds, not every job it ran (whose index entries a held snapshot keeps).
    async fn job_cancel_requests(&self, worker_id: &str, among: &[i64]) -> Result<Vec<JobFence>>;

    /// Of the jobs `among` (by id: those whose handlers run in the worker now), the ones
    /// running under that worker, as their fences, by id. A run whose fence is not among them
    /// is no longer its job's: the job was rescued, cancelled or claimed again meanwhile (the
    /// worker stalled past its lease). Looked up by id, as [`Self::job_cancel_requests`].
    async fn job_running_among(&self, worker_id: &str, among: &[i64]) -> Result<Vec<JobFence>>;

    /// Of the jobs `among` (by id: completions the worker wrote and whose answer it lost, or
    /// could not tell apart from a failure), the `completed` ones whose last attempt was that
    /// worker's, as the fences of those attempts, by id. Looked up by id.
    async fn job_completed_among(&self, worker_id: &str, among: &[i64]) -> Result<Vec<JobFence>>;

    /// Of the jobs `among` (by id: those the worker holds and has not started), the running
    /// ones of that worker none of whose earlier attempts started and a parent of which has not
    /// ended or ended after their claim (retried meanwhile), as their fences, by id.
    async fn job_parents_ran_again(&self, worker_id: &str, among: &[i64]) -> Result<Vec<JobFence>>;

    /// A user retries a job that is not running: available now (or `pending` while it must
    /// wait: a finished job of a busy sequence, a child whose parents have not all ended),
    /// history kept. Other processes'
    /// producers are woken at commit where the backend can. `None` when no such job is there
    /// to retry (gone, or running).
    async fn job_retry(&self, id: i64) -> Result<Option<JobRow>>;

    /// Deletes finished jobs past their retention; returns how many went.
    async fn job_delete_finalized(&self, params: JobDeleteFinalizedParams) -> Result<u64>;

    /// Rescues running jobs of lost workers and stuck jobs; returns each job it moved.
    async fn job_rescue(&self, params: JobRescueParams) -> Result<Rescued>;

    /// Per queue that has any, the jobs due to run (available, or scheduled/retryable whose
    /// time has come) and the oldest one's due time.
    async fn queue_due(&self) -> Result<Vec<QueueDueRow>>;

    /// Up to `limit` queues that have jobs or a pause record, with their limits, in name order
    /// from the first name after `after` (all names when `None`).
    async fn queue_list(&self, after: Option<String>, limit: u32) -> Result<Vec<QueueRow>>;

    /// Every queue that has a limit, with its limits, in name order: read from the queues'
    /// own rows only (a metrics scrape reads it; the jobs are not looked at).
    async fn queue_limited(&self) -> Result<Vec<QueueRow>>;

    /// Sets (or with `clear`, replaces) a queue's limits (already checked); returns the queue
    /// as it is now. Other processes' producers are woken at commit where the backend can.
    async fn queue_limit_set(&self, params: QueueLimitParams) -> Result<QueueRow>;

    /// For every queue with a limit, per concurrency key, its available due jobs, running
    /// jobs and starts within the rate windows.
    async fn queue_limit_usage(&self) -> Result<Vec<QueueKeyUsage>>;

    /// Pauses a queue (its name already checked), counting the change (`changes`); other
    /// processes hear of it at commit where the backend can (NOTIFY).
    async fn queue_pause(&self, name: &str) -> Result<()>;

    /// How many times a queue was paused or given other limits (0: never, or no such queue).
    async fn queue_changes(&self, name: &str) -> Result<i64>;

    /// Resumes a queue (its name already checked); other processes' producers are woken at
    /// commit where the backend can.
    async fn queue_resume(&self, name: &str) -> Result<()>;

    /// Registers a worker process or refreshes its heartbeat, with no lease or limits of its
    /// own.
    async fn worker_heartbeat(&self, params: WorkerHeartbeatParams) -> Result<()>;

    /// Registers a worker process with its own lease and stuck limits, or refreshes its
    /// heartbeat (and those settings).
    async fn worker_register(&self, params: WorkerRegisterParams) -> Result<()>;

    /// Removes a worker's registration, and the registrations of workers silent for more than
    /// a day.
    async fn worker_delete(&self, id: &str) -> Result<()>;

    /// Registered workers.
    async fn worker_list(&self) -> Result<Vec<WorkerRow>>;

    /// Live workers (a heartbeat within their own lease, or within `lease` for a
    /// registration without one) that serve this queue and kind (names already checked). A
    /// registration without queues or kinds serves everything.
    async fn worker_count_serving(&self, params: WorkerServingParams) -> Result<i64>;

    /// Per queue and kind, the jobs due to run (available, or scheduled/retryable and due)
    /// that no live worker serves (judged as [`Driver::worker_count_serving`] judges them,
    /// `lease` for registrations without one), by queue, then kind.
    async fn job_unserved(&self, lease: std::time::Duration) -> Result<Vec<UnservedRow>>;

    /// Moves the periodic job's slot forward and inserts its job, in one transaction; returns
    /// the job when this call advanced a recorded slot, `None` when the slot was already taken
    /// or had no record yet (then only the slot is recorded).
    async fn periodic_enqueue(&self, params: PeriodicEnqueueParams)
        -> Result<Option<InsertResult>>;

    // ---- the operator's pages (see [`admin`](super::admin)) ----

    /// Jobs a filter matches, newest first: below `before_id`, up to `max_id`, at most
    /// `limit` (the filter already checked).
    async fn job_search(&self, params: JobSearchParams) -> Result<Vec<JobRow>>;

    /// The ids of the jobs [`Driver::job_search`] would return.
    async fn job_search_ids(&self, params: JobSearchParams) -> Result<Vec<i64>>;

    /// How many jobs a filter matches, and the highest id among them.
    async fn job_count_matching(&self, filter: JobFilter) -> Result<MatchCount>;

    /// Retries the listed jobs that are neither running nor available, in one transaction, as
    /// [`Driver::job_retry`] does each; other processes' producers are woken at commit where
    /// the backend can. Of the listed jobs, only those still in one of `states` (none: any):
    /// a bulk action's filter, judged again where it writes, since a job found by the filter
    /// may have changed state since (retried and completed by someone else, say).
    async fn job_retry_many(&self, ids: Vec<i64>, states: Vec<JobState>) -> Result<Vec<JobChange>>;

    /// Cancels the listed unfinished jobs, in one transaction, as [`Driver::job_cancel`] does
    /// each (a running one is asked to stop, its worker told at commit where the backend can).
    /// Only those still in one of `states` (none: any), as for [`Driver::job_retry_many`].
    async fn job_cancel_many(&self, ids: Vec<i64>, states: Vec<JobState>)
        -> Result<Vec<JobChange>>;

    /// Deletes the listed jobs that are not running, in one transaction; returns how many went.
    /// Only those still in one of `states` (none: any), as for [`Driver::job_retry_many`].
    async fn job_delete_many(&self, ids: Vec<i64>, states: Vec<JobState>) -> Result<u64>;

    /// Running jobs per worker id.
    async fn job_running_by_worker(&self) -> Result<Vec<(String, i64)>>;

    /// The periodic schedules' records, by name, each with the job of its last slot.
    async fn periodic_list(&self) -> Result<Vec<PeriodicRow>>;

    /// Completed and discarded jobs per minute (UTC), finished at or after `since`, by minute.
    async fn job_throughput(&self, since: DateTime<Utc>) -> Result<Vec<ThroughputRow>>;
}
