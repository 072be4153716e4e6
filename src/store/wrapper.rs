//! [`Store`]: the one wrapper above every [`Driver`]. See the module docs of [`crate::store`].

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::admin::{BulkFence, BULK_BATCH, BULK_MAX};
use super::*;
use crate::error::{Error, Result};
use crate::job::{validate_name, JobRow, JobState};

/// The store every part of porter uses: a [`Driver`] wrapped once. Share it behind an `Arc`
/// (what [`open`] gives).
///
/// Methods keep the driver's names; what they add over the driver is the same for every
/// backend:
/// * fenced writes that changed no row are [`Error::Fenced`];
/// * a user's cancel or retry that matched nothing is [`Error::Conflict`] when the job exists
///   (final, or running) and [`Error::NotFound`] when it does not;
/// * completions answer per fence, in the order given (a fence given twice reports once);
/// * claimed jobs come in claim order (priority, due time, id);
/// * queue names are checked before anything is written;
/// * writes that make jobs due wake this process's producers; a cancel of a running job wakes
///   its worker's cancel watcher;
/// * every call is counted per operation ([`Store::op_stats`]).
pub struct Store {
    driver: Arc<dyn Driver>,
    stats: Mutex<BTreeMap<&'static str, OpStats>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.driver.backend())
            .finish_non_exhaustive()
    }
}

/// Calls of one store operation in this process, since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct OpStats {
    /// Calls that returned.
    pub calls: u64,
    /// Calls that returned an error (a fenced write or a conflict included).
    pub errors: u64,
    /// Time spent in the calls, in total.
    pub seconds: f64,
}

/// The ops that change what a user asked to change (inserts, retries, cancels, deletes,
/// queue settings): once one begins, a web request is not cut short by its timeout (see
/// [`super::watch`]). The runtime's own writes are not among them: no request makes them.
const WRITES: &[&str] = &[
    "batch_insert",
    "job_cancel",
    "job_cancel_many",
    "job_delete_many",
    "job_insert_many",
    "job_retry",
    "job_retry_many",
    "queue_limit_set",
    "queue_pause",
    "queue_resume",
    "workflow_cancel",
    "workflow_insert",
];

impl Store {
    /// Wraps a driver. [`open`] does this for the built-in backends; a test double of a
    /// driver is wrapped the same way.
    pub fn new(driver: Arc<dyn Driver>) -> Self {
        Store {
            driver,
            stats: Mutex::new(BTreeMap::new()),
        }
    }

    /// The driver underneath.
    pub fn driver(&self) -> &Arc<dyn Driver> {
        &self.driver
    }

    /// Per operation (`job_claim`, `queue_pause`, ...), the calls this store has answered.
    pub fn op_stats(&self) -> BTreeMap<&'static str, OpStats> {
        self.stats.lock().expect("op stats").clone()
    }

    /// Runs one operation and counts it.
    async fn op<T>(&self, name: &'static str, call: impl Future<Output = Result<T>>) -> Result<T> {
        let started = Instant::now();
        // A web request answered 408 already (its work went on in a task of its own) begins
        // no write: its client was told that nothing was written.
        let out = if WRITES.contains(&name) && !super::watch::write_begins() {
            Err(Error::Conflict(format!(
                "{name}: the request timed out before this write began; nothing was written"
            )))
        } else {
            call.await
        };
        let took = started.elapsed();
        let mut stats = self.stats.lock().expect("op stats");
        let entry = stats.entry(name).or_default();
        entry.calls += 1;
        entry.errors += u64::from(out.is_err());
        entry.seconds += took.as_secs_f64();
        out
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.driver.backend()
    }

    /// In-process wake-ups: inserts (from this process, and from others where the backend can
    /// tell) wake the queue's subscribers.
    pub fn wakeup(&self) -> &Arc<Wakeup> {
        self.driver.wakeup()
    }

    /// Wakes this process's producers of these queues (each once).
    fn wake_queues<'a>(&self, queues: impl IntoIterator<Item = &'a str>) {
        let queues: std::collections::BTreeSet<&str> = queues.into_iter().collect();
        for q in queues {
            self.wakeup().notify(q);
        }
    }

    /// The database's clock.
    pub async fn now(&self) -> Result<DateTime<Utc>> {
        self.op("now", self.driver.now()).await
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        self.op("ping", self.driver.ping()).await
    }

    /// Why this process's database is gone for good, if it is: on SQLite, the file (or its
    /// WAL) was deleted or replaced under the running process, so its writes would go where
    /// nobody reads them (commits are refused from then on). A long-running process exits on
    /// it, for its supervisor to start it again on the file that is there now. `None` on
    /// PostgreSQL, whose outages pass.
    pub async fn file_replaced(&self) -> Option<String> {
        self.driver.file_replaced().await
    }

    /// The database under this store, for an application's own SQL beside porter's (see
    /// [`Database`]); `None` for a driver that has none to give (a test double, say).
    pub fn database(&self) -> Option<Database<'_>> {
        self.driver.database()
    }

    /// Inserts jobs in one transaction, in order, and wakes their queues' producers. A job
    /// whose unique key is held by an unfinished job is not inserted; that job is returned
    /// with `inserted = false`.
    ///
    /// Each job is checked first ([`JobInsertParams::check`]: params may be built by hand);
    /// one that fails it fails the insert, and nothing is written.
    pub async fn job_insert_many(&self, jobs: Vec<JobInsertParams>) -> Result<Vec<InsertResult>> {
        for job in &jobs {
            job.check()?;
        }
        let queues: Vec<String> = jobs.iter().map(|j| j.queue.clone()).collect();
        let out = self
            .op("job_insert_many", self.driver.job_insert_many(jobs))
            .await?;
        self.wake_queues(queues.iter().map(String::as_str));
        Ok(out)
    }

    /// Inserts a workflow's steps in one transaction (all or nothing) and wakes their queues'
    /// producers. See [`crate::workflow`].
    ///
    /// Then, as `porter enqueue` does, it checks that live workers serve each queue and kind
    /// of its steps: [`WorkflowInserted::warnings`] has a line (also logged as a warning) for
    /// each one none serves. The steps are in either way.
    ///
    /// The params are checked first ([`WorkflowInsertParams::check`]); nothing is written
    /// when they fail it.
    pub async fn workflow_insert(&self, params: WorkflowInsertParams) -> Result<WorkflowInserted> {
        params.check()?;
        let queues: Vec<String> = params.steps.iter().map(|s| s.job.queue.clone()).collect();
        let needed = params.serving_needed();
        let mut out = self
            .op("workflow_insert", self.driver.workflow_insert(params))
            .await?;
        self.wake_queues(queues.iter().map(String::as_str));
        let served = self.served_after_insert(&needed).await;
        out.warn_unserved(needed, &served);
        Ok(out)
    }

    /// Whether live workers serve each queue and kind, asked after an insert committed: a
    /// failed check counts as served (no warning) and is logged at debug, as `porter enqueue`
    /// does, since the jobs are in either way.
    async fn served_after_insert(&self, needed: &[((String, String), u64)]) -> Vec<bool> {
        let mut served = Vec::with_capacity(needed.len());
        for ((queue, kind), _) in needed {
            served.push(match self.worker_count_serving(queue, kind).await {
                Ok(n) => n > 0,
                Err(e) => {
                    tracing::debug!(error = %e, queue, kind, "could not ask whether a live worker serves the jobs");
                    true
                }
            });
        }
        served
    }

    /// Workflows newest first, a page at a time (`before_id`; `limit` defaulted and capped
    /// like job listings), each with its steps' counts by state.
    pub async fn workflow_list(
        &self,
        before_id: Option<i64>,
        limit: Option<u32>,
    ) -> Result<Vec<WorkflowRow>> {
        let limit = super::list_page_size(limit);
        self.op("workflow_list", self.driver.workflow_list(before_id, limit))
            .await
    }

    /// One workflow with its steps (in insertion order, each with the steps it waits for).
    pub async fn workflow_get(&self, id: i64) -> Result<Option<workflow::WorkflowDetail>> {
        self.workflow_page(id, StepPage::all()).await
    }

    /// One workflow with a page of its steps: its counts are of all of them, and
    /// `next_after_id` says where the next page starts when one follows.
    pub async fn workflow_page(
        &self,
        id: i64,
        page: StepPage,
    ) -> Result<Option<workflow::WorkflowDetail>> {
        // A page of none would read as the last page whatever follows.
        if page.limit == Some(0) {
            return Err(Error::invalid(
                "step page",
                "a page of steps holds at least 1 step",
            ));
        }
        // None read would leave no total beside the parents not read.
        if page.parents == workflow::StepParents::First(0) {
            return Err(Error::invalid(
                "step page",
                "read at least 1 parent of each step",
            ));
        }
        // One more than asked for, to know whether another page follows.
        let ask = StepPage {
            limit: page.limit.map(|n| n.saturating_add(1)),
            ..page
        };
        let Some(parts) = self
            .op("workflow_get", self.driver.workflow_get(id, ask))
            .await?
        else {
            return Ok(None);
        };
        let mut detail = parts.detail();
        if let Some(limit) = page.limit {
            if detail.steps.len() > limit as usize {
                detail.steps.truncate(limit as usize);
                detail.next_after_id = detail.steps.last().map(|s| s.job_id);
            }
        }
        Ok(Some(detail))
    }

    /// The workflow a job is a step of; `None` for a job of no workflow (or no such job).
    pub async fn job_workflow(&self, id: i64) -> Result<Option<workflow::JobWorkflow>> {
        self.op("job_workflow", self.driver.job_workflow(id)).await
    }

    /// Cancels a workflow: its steps that have not started (pending ones included) are
    /// cancelled at once, running ones are asked to stop as [`Store::job_cancel`] asks (their
    /// workers are told). Finished steps stay as they are. [`Error::NotFound`] when there is no
    /// such workflow.
    pub async fn workflow_cancel(&self, id: i64) -> Result<workflow::WorkflowCancelled> {
        let changed = self
            .op("workflow_cancel", self.driver.workflow_cancel(id))
            .await?
            .ok_or_else(|| Error::not_found("workflow", id))?;
        let mut out = workflow::WorkflowCancelled {
            id,
            ..Default::default()
        };
        let mut workers = std::collections::BTreeSet::new();
        for c in &changed {
            match (c.state, &c.attempted_by) {
                (JobState::Running, Some(worker)) => {
                    out.cancel_requested += 1;
                    workers.insert(worker.as_str());
                }
                _ => out.cancelled += 1,
            }
        }
        for worker in workers {
            self.wakeup().notify_cancel(worker);
        }
        Ok(out)
    }

    /// Inserts a batch in one transaction (all or nothing) and wakes its queues' producers.
    /// See [`crate::batch`].
    ///
    /// Then, as `porter enqueue` does, it checks that live workers serve the callback's queue
    /// and kind, and each of its jobs': [`BatchInserted::warnings`] has a line (also logged as
    /// a warning) for each one none serves. Everything is inserted either way: a callback
    /// nobody serves becomes `available` when the batch ends and waits, counted among the
    /// jobs no live worker serves, until a worker serving it runs.
    ///
    /// The params are checked first ([`BatchInsertParams::check`]); nothing is written when
    /// they fail it.
    pub async fn batch_insert(&self, params: BatchInsertParams) -> Result<BatchInserted> {
        params.check()?;
        let queues: Vec<String> = params.jobs.iter().map(|j| j.queue.clone()).collect();
        let needed = params.serving_needed();
        let mut out = self
            .op("batch_insert", self.driver.batch_insert(params))
            .await?;
        self.wake_queues(queues.iter().map(String::as_str));
        let served = self.served_after_insert(&needed).await;
        out.warn_unserved(needed, &served);
        Ok(out)
    }

    /// Batches newest first, a page at a time (`before_id`; `limit` defaulted and capped like
    /// job listings).
    pub async fn batch_list(
        &self,
        before_id: Option<i64>,
        limit: Option<u32>,
    ) -> Result<Vec<BatchRow>> {
        let limit = super::list_page_size(limit);
        self.op("batch_list", self.driver.batch_list(before_id, limit, None))
            .await
    }

    /// One batch.
    pub async fn batch_get(&self, id: i64) -> Result<Option<BatchRow>> {
        Ok(self
            .op("batch_list", self.driver.batch_list(None, 1, Some(id)))
            .await?
            .pop())
    }

    /// One job by id, with what it recorded (output, progress), read at one moment.
    pub async fn job_get(&self, id: i64) -> Result<Option<JobRow>> {
        self.op("job_get", self.driver.job_get(id)).await
    }

    /// Records a running job's output and/or progress (fenced; [`Error::Fenced`] when the
    /// fence matched no row). An output over [`MAX_OUTPUT_BYTES`] or a progress over
    /// [`MAX_PROGRESS_BYTES`] is refused with [`Error::Invalid`], and nothing is written.
    pub async fn job_output_record(&self, params: JobRecordParams) -> Result<()> {
        params.check()?;
        if params.output.is_none() && params.progress.is_none() {
            return Ok(());
        }
        let fence = params.fence.clone();
        self.op("job_output_record", async {
            if self.driver.job_output_record(params).await? {
                Ok(())
            } else {
                Err(Error::Fenced {
                    id: fence.id,
                    attempt: fence.attempt,
                })
            }
        })
        .await
    }

    /// A job's parents (what it waits or waited for) and children (what waits or waited for
    /// it), by id.
    pub async fn job_deps(&self, id: i64) -> Result<JobDeps> {
        self.op("job_deps", self.driver.job_deps(id, None)).await
    }

    /// [`Store::job_deps`], the first `limit` parents and children only (by id), with how
    /// many of each there are: a fan-out's root may have 100,000 children.
    pub async fn job_deps_first(&self, id: i64, limit: u32) -> Result<JobDeps> {
        self.op("job_deps", self.driver.job_deps(id, Some(limit)))
            .await
    }

    /// A page of a job's children (`children`) or parents, by id after `after_id`, at most
    /// `limit` (at least 1).
    pub async fn job_links(
        &self,
        id: i64,
        children: bool,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<JobLink>> {
        let links = self.driver.job_links(id, children, after_id, limit.max(1));
        self.op("job_links", links).await
    }

    /// A job's parents, by id, each with the output it recorded (`None` for none), as they
    /// were at one moment: what a job reads with [`crate::Job::parent_outputs`].
    pub async fn job_parent_outputs(
        &self,
        id: i64,
    ) -> Result<Vec<(JobLink, Option<serde_json::Value>)>> {
        self.op("job_parent_outputs", self.driver.job_parent_outputs(id))
            .await
    }

    /// What these jobs recorded (output, progress), by id; jobs that recorded nothing (or are
    /// gone) are left out.
    pub async fn job_output_get(&self, ids: Vec<i64>) -> Result<BTreeMap<i64, JobOutput>> {
        if ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let rows = self
            .op("job_output_get", self.driver.job_output_get(ids))
            .await?;
        Ok(rows.into_iter().collect())
    }

    /// Jobs matching the filters, newest (highest id) first.
    pub async fn job_list(&self, params: JobListParams) -> Result<Vec<JobRow>> {
        self.op("job_list", self.driver.job_list(params)).await
    }

    /// Counts by queue and state, every state present (zero where there are none).
    pub async fn job_counts(&self) -> Result<JobCounts> {
        let rows = self.op("job_counts", self.driver.job_counts()).await?;
        Ok(JobCounts::from_rows(
            rows.into_iter().map(|r| (r.queue, r.state, r.count)),
        ))
    }

    /// Claims up to `limit` due jobs of one queue (unless it is paused) for a worker, by
    /// priority, due time, id: they become `running` with `attempt + 1`. Scheduled and
    /// retryable jobs that are due are made available first.
    ///
    /// A queue's limits ([`QueueLimits`]) hold across processes: see [`Store::job_claim_limited`].
    pub async fn job_claim(&self, params: JobClaimParams) -> Result<Vec<JobRow>> {
        Ok(self.job_claim_limited(params).await?.jobs)
    }

    /// [`Store::job_claim`], also saying whether the queue's limits held due jobs back (then a
    /// producer looks again soon: slots free up in other processes without waking it). At no
    /// moment does a queue have more running jobs than its concurrency limit, nor a key more
    /// than the per-key limit, nor a rate window more starts than its rate allows; jobs of
    /// keys at their limit are skipped, so they hold back no other key.
    pub async fn job_claim_limited(&self, params: JobClaimParams) -> Result<JobClaimed> {
        self.job_claim_ahead(params, ClaimAhead::default()).await
    }

    /// [`Store::job_claim_limited`] for a producer that claims ahead of its free slots (see
    /// [`ClaimAhead`]): of a limited queue it takes jobs ahead only within bounds (none for a
    /// rate-limited queue), so that no worker holds all of a limit's room for jobs that wait.
    pub async fn job_claim_ahead(
        &self,
        params: JobClaimParams,
        mut ahead: ClaimAhead,
    ) -> Result<JobClaimed> {
        if params.limit == 0 || params.kinds.is_empty() {
            return Ok(JobClaimed::default());
        }
        ahead.ahead = ahead.ahead.min(params.limit);
        let mut claimed = self
            .op("job_claim", self.driver.job_claim(params, ahead))
            .await?;
        claimed
            .jobs
            .sort_by_key(|j| (j.priority, j.scheduled_at, j.id));
        Ok(claimed)
    }

    /// Completes jobs (fenced). Returns, per fence, whether the row changed; a fence given
    /// twice changed its row once, and the first one reports it.
    pub async fn job_complete_many(&self, fences: Vec<JobFence>) -> Result<Vec<bool>> {
        if fences.is_empty() {
            return Ok(Vec::new());
        }
        let completed = self
            .op(
                "job_complete_many",
                self.driver.job_complete_many(fences.clone()),
            )
            .await?;
        let mut completed: HashSet<JobFence> = completed.into_iter().collect();
        Ok(fences.iter().map(|f| completed.remove(f)).collect())
    }

    /// [`Store::job_complete_many`] and then a claim of due jobs for each of `claims`, as
    /// [`Store::job_claim`] takes them from a queue without limits (a paused queue, or one with
    /// limits, gives nothing here): a job that waited for the completed ones is claimed right
    /// after the write that made it available (in the same transaction on SQLite). Returns,
    /// per fence, whether its row changed, and each claim's jobs (by priority, due time, id),
    /// in the order of `claims`.
    pub async fn job_complete_and_claim(
        &self,
        fences: Vec<JobFence>,
        claims: Vec<JobClaimParams>,
    ) -> Result<(Vec<bool>, Vec<Vec<JobRow>>)> {
        let asked: Vec<bool> = claims
            .iter()
            .map(|c| c.limit > 0 && !c.kinds.is_empty())
            .collect();
        let claims: Vec<JobClaimParams> = claims
            .into_iter()
            .zip(&asked)
            .filter_map(|(c, ask)| ask.then_some(c))
            .collect();
        if fences.is_empty() || claims.is_empty() {
            let changed = self.job_complete_many(fences).await?;
            return Ok((changed, asked.iter().map(|_| Vec::new()).collect()));
        }
        let (completed, claimed) = self
            .op(
                "job_complete_claim",
                self.driver.job_complete_claim(fences.clone(), claims),
            )
            .await?;
        let mut completed: HashSet<JobFence> = completed.into_iter().collect();
        let changed = fences.iter().map(|f| completed.remove(f)).collect();
        let mut claimed = claimed.into_iter();
        let claimed = asked
            .iter()
            .map(|ask| {
                let mut jobs = if *ask {
                    claimed.next().unwrap_or_default()
                } else {
                    Vec::new()
                };
                jobs.sort_by_key(|j| (j.priority, j.scheduled_at, j.id));
                jobs
            })
            .collect();
        Ok((changed, claimed))
    }

    /// Records a failed attempt (fenced): retryable after `retry_in`, or discarded when the
    /// attempts are used up or `discard` is set. The error joins the history, cut to
    /// [`MAX_ERROR_BYTES`](super::MAX_ERROR_BYTES) and its trace to
    /// [`MAX_TRACE_BYTES`](super::MAX_TRACE_BYTES), a NUL in either kept as U+FFFD (PostgreSQL's
    /// text has none).
    pub async fn job_fail(&self, mut params: JobFailParams) -> Result<JobRow> {
        params.error = super::cap_error(params.error);
        params.trace = params.trace.map(super::cap_trace);
        let fence = params.fence.clone();
        self.op("job_fail", async {
            fenced(&fence, self.driver.job_fail(params).await?)
        })
        .await
    }

    /// Puts a running job back to `scheduled` after a delay without using an attempt (fenced).
    pub async fn job_snooze(&self, params: JobSnoozeParams) -> Result<JobRow> {
        let fence = params.fence.clone();
        self.op("job_snooze", async {
            fenced(&fence, self.driver.job_snooze(params).await?)
        })
        .await
    }

    /// The jobs the database says a worker runs (state `running`, `attempted_by` = the
    /// worker) that it claimed at `since` or later, as fences: the worker reconciles them with
    /// the jobs it really runs. The bound lets the lookup skip the index entries of the jobs the
    /// worker ran before, which a transaction held open elsewhere keeps in the index on
    /// Postgres (see the README's sustained load).
    pub async fn job_list_running(
        &self,
        worker_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<JobFence>> {
        self.op(
            "job_list_running",
            self.driver.job_list_running(worker_id, since),
        )
        .await
    }

    /// Gives a running job back (fenced): it is `available` again at once (its queue's
    /// producers are woken), and the attempt does not count toward `max_attempts` (which grows
    /// by one, as for a snooze, so fences stay unique). The reason joins the error history.
    /// For jobs their worker stopped without a result of their own: a shutdown, or a reconcile.
    pub async fn job_release(&self, mut params: JobReleaseParams) -> Result<JobRow> {
        params.reason = super::cap_error(params.reason);
        let fence = params.fence.clone();
        let row = self
            .op("job_release", async {
                fenced(&fence, self.driver.job_release(params).await?)
            })
            .await?;
        self.wake_queues([row.queue.as_str()]);
        Ok(row)
    }

    /// A running job cancels itself (fenced), with a reason kept in its error history (cut and
    /// cleaned as [`Store::job_fail`]'s error).
    pub async fn job_cancel_running(&self, mut params: JobCancelRunningParams) -> Result<JobRow> {
        params.reason = super::cap_error(params.reason);
        let fence = params.fence.clone();
        self.op("job_cancel_running", async {
            fenced(&fence, self.driver.job_cancel_running(params).await?)
        })
        .await
    }

    /// A user cancels a job that has not finished. A job that is not running is cancelled at
    /// once. A running one stays `running` (its unique key stays held) with the request recorded
    /// in its metadata ([`crate::job::CANCEL_REQUESTED_AT`]), and the worker that runs it is
    /// woken ([`Wakeup::subscribe_cancel`]; NOTIFY on Postgres) to stop it and record it
    /// `cancelled`. Final jobs are a conflict.
    pub async fn job_cancel(&self, id: i64) -> Result<JobRow> {
        let row = self
            .op("job_cancel", async {
                match self.driver.job_cancel(id).await? {
                    Some(row) => Ok(row),
                    None => Err(self
                        .conflict_or_not_found(id, |j| format!("job {id} is already {}", j.state))
                        .await),
                }
            })
            .await?;
        // Workers of other processes are told by the driver (NOTIFY, or the change watcher).
        if let (JobState::Running, Some(worker)) = (row.state, &row.attempted_by) {
            self.wakeup().notify_cancel(worker);
        }
        Ok(row)
    }

    /// Of the jobs `among` (by id: those the worker holds), the running ones of that worker that
    /// a user asked to cancel, as their fences, by id.
    pub async fn job_cancel_requests(
        &self,
        worker_id: &str,
        among: &[i64],
    ) -> Result<Vec<JobFence>> {
        self.op(
            "job_cancel_requests",
            self.driver.job_cancel_requests(worker_id, among),
        )
        .await
    }

    /// Of the jobs `among` (by id: those whose handlers run in the worker now), the ones running
    /// under that worker, as their fences, by id: a run whose fence is not among them is no
    /// longer its job's.
    pub async fn job_running_among(&self, worker_id: &str, among: &[i64]) -> Result<Vec<JobFence>> {
        self.op(
            "job_running_among",
            self.driver.job_running_among(worker_id, among),
        )
        .await
    }

    /// Of the completions `fences` (a worker's, written once already, whose answer was lost
    /// or could not be told apart from a failure: a batch written in two halves of which one
    /// committed), whether each is written: its job is `completed` by that very attempt.
    pub async fn job_completed_already(&self, fences: &[JobFence]) -> Result<Vec<bool>> {
        let Some(worker_id) = fences.first().map(|f| f.worker_id.clone()) else {
            return Ok(Vec::new());
        };
        // One worker's completions: the completer writes no other.
        let ids: Vec<i64> = fences
            .iter()
            .filter(|f| f.worker_id == worker_id)
            .map(|f| f.id)
            .collect();
        let completed: HashSet<JobFence> = self
            .op(
                "job_completed_among",
                self.driver.job_completed_among(&worker_id, &ids),
            )
            .await?
            .into_iter()
            .collect();
        Ok(fences.iter().map(|f| completed.contains(f)).collect())
    }

    /// Of the jobs `among` (by id: those the worker holds and has not started), the running
    /// ones of that worker that a parent's retry would have sent back to wait had they not been
    /// claimed ahead: none of their earlier attempts started, and a parent has not ended or
    /// ended after their claim. The worker gives them back unstarted instead of starting them
    /// ([`Store::job_release`] then judges them again), as their fences, by id.
    pub async fn job_parents_ran_again(
        &self,
        worker_id: &str,
        among: &[i64],
    ) -> Result<Vec<JobFence>> {
        if among.is_empty() {
            return Ok(Vec::new());
        }
        self.op(
            "job_parents_ran_again",
            self.driver.job_parents_ran_again(worker_id, among),
        )
        .await
    }

    /// A user retries a job that is not running: it becomes available now, history kept, and
    /// its queue's producers are woken; or `pending` while it must wait (a finished job of a
    /// busy sequence, a child whose parents have not all ended). A running job is a conflict.
    pub async fn job_retry(&self, id: i64) -> Result<JobRow> {
        let row = self
            .op("job_retry", async {
                let retried = match self.driver.job_retry(id).await {
                    // The unique index refused it, in each database's own words: said once,
                    // the same on both.
                    Err(Error::Conflict(said)) => {
                        return Err(self
                            .conflict_or_not_found(id, |j| match &j.unique_key {
                                Some(key) => format!(
                                    "job {id} cannot be retried: an unfinished job holds its unique key {key:?}"
                                ),
                                None => said,
                            })
                            .await)
                    }
                    other => other?,
                };
                match retried {
                    Some(row) => Ok(row),
                    None => Err(self
                        .conflict_or_not_found(id, |j| match j.state {
                            JobState::Pending => format!(
                                "job {id} is pending: it waits for its sequence or its parents and \
                                 has not run; cancel it instead"
                            ),
                            // It had not ended when the retry looked, and ended before it
                            // was written (PostgreSQL: the retry acts on what it locked).
                            state if state.is_final() => format!(
                                "job {id} had not ended when the retry looked, and has ended \
                                 since; retry it again"
                            ),
                            JobState::Running => {
                                format!("job {id} is running; it cannot be retried until it stops")
                            }
                            // It ran, or waited, when the retry looked, and changed since
                            // (PostgreSQL, as above).
                            _ => format!(
                                "job {id} changed while the retry looked; retry it again"
                            ),
                        })
                        .await),
                }
            })
            .await?;
        self.wake_queues([row.queue.as_str()]);
        Ok(row)
    }

    /// After a user's write matched no row: a conflict if the job is there, else not found.
    async fn conflict_or_not_found(
        &self,
        id: i64,
        conflict: impl FnOnce(&JobRow) -> String,
    ) -> Error {
        match self.driver.job_get(id).await {
            Ok(Some(row)) => Error::Conflict(conflict(&row)),
            Ok(None) => Error::not_found("job", id),
            Err(e) => e,
        }
    }

    /// Deletes finished jobs past their retention; returns how many went.
    pub async fn job_delete_finalized(&self, params: JobDeleteFinalizedParams) -> Result<u64> {
        self.op(
            "job_delete_finalized",
            self.driver.job_delete_finalized(params),
        )
        .await
    }

    /// Rescues running jobs of lost workers and stuck jobs; when some are due again, wakes
    /// every producer of this process.
    pub async fn job_rescue(&self, params: JobRescueParams) -> Result<RescueCounts> {
        Ok(self.job_rescue_jobs(params).await?.counts())
    }

    /// [`Store::job_rescue`], answering each job it moved (queue, kind, new state).
    pub async fn job_rescue_jobs(&self, params: JobRescueParams) -> Result<Rescued> {
        let rescued = self
            .op("job_rescue", self.driver.job_rescue(params))
            .await?;
        if rescued.counts().retried > 0 {
            self.wakeup().notify(wake::ALL_QUEUES);
        }
        Ok(rescued)
    }

    /// Per queue with jobs due to run: how many (its depth) and how long the oldest has been
    /// due (its lag), by the database clock. Queues with nothing due are left out.
    pub async fn queue_lag(&self) -> Result<Vec<QueueLag>> {
        let rows = self.op("queue_due", self.driver.queue_due()).await?;
        let now = self.now().await?;
        Ok(rows
            .into_iter()
            .map(|r| QueueLag {
                queue: r.queue,
                depth: r.depth,
                lag: (now - r.oldest_due_at).to_std().unwrap_or_default(),
            })
            .collect())
    }

    /// Queues that have jobs or a pause record, with their limits, in name order: every one,
    /// read a page ([`QUEUE_PAGE`]) at a time.
    pub async fn queue_list(&self) -> Result<Vec<QueueRow>> {
        let mut all: Vec<QueueRow> = Vec::new();
        let mut want = QUEUE_PAGE;
        loop {
            let after = all.last().map(|q| q.name.clone());
            let page = self.queue_page(after.clone(), want).await?;
            let done = page.len() < want as usize;
            // Names that read the same as the cursor (text that is not UTF-8, read with U+FFFD:
            // see `http::listing::page`) are not listed again, and a page of nothing else
            // is read again for that many more, up to 100,000.
            let got = page.len();
            let before = all.len();
            for q in page {
                if all.last().map(|l| &l.name).or(after.as_ref()) != Some(&q.name) {
                    all.push(q);
                }
            }
            if done || (all.len() == before && got >= 100_000) {
                return Ok(all);
            }
            want = if all.len() == before {
                QUEUE_PAGE + got as u32
            } else {
                QUEUE_PAGE
            };
        }
    }

    /// Up to `limit` of the queues [`Store::queue_list`] lists, from the first name after
    /// `after` (a cursor: any text, not checked as a name, since another program may have
    /// named a queue porter would refuse).
    pub async fn queue_page(&self, after: Option<String>, limit: u32) -> Result<Vec<QueueRow>> {
        if after.as_deref().is_some_and(|a| a.contains('\0')) {
            return Err(Error::invalid(
                "after",
                "holds a NUL character, which no queue name can hold",
            ));
        }
        self.op("queue_list", self.driver.queue_list(after, limit.max(1)))
            .await
    }

    /// Sets a queue's limits, checked first (each at least 1, rate periods 1 ms to 366 days);
    /// `clear` removes every limit before setting the given ones. Returns the queue as it is
    /// now, and wakes its producers (a limit raised or removed may let jobs start).
    pub async fn queue_limit_set(&self, params: QueueLimitParams) -> Result<QueueRow> {
        validate_name("queue", &params.queue)?;
        params.set.check()?;
        if !params.clear && !params.set.any() {
            return Err(Error::invalid(
                "limits",
                "give at least one limit to set, or clear them",
            ));
        }
        let queue = params.queue.clone();
        let row = self
            .op("queue_limit_set", self.driver.queue_limit_set(params))
            .await?;
        self.wake_queues([queue.as_str()]);
        // This process's workers give back the jobs they claimed ahead under the old limits
        // (other processes hear of it from the database).
        self.wakeup().notify_control(&queue);
        Ok(row)
    }

    /// Per queue with limits, how many of its available due jobs wait because of a limit
    /// (what a claim would not take now, however many workers had free slots). Queues without
    /// limits are left out, and so are paused ones: their jobs wait for the resume, not for a
    /// limit (until 7 Dec a paused queue's were counted as if it ran, all but the limit's worth
    /// blamed on the limit). Reads the limited queues' rows and their jobs only: a metrics
    /// scrape calls it (until 6 Dec it listed every queue, which on PostgreSQL read every job,
    /// 1.1 s a scrape at 1M jobs: review of 6 Dec).
    pub async fn queue_limit_waiting(&self) -> Result<BTreeMap<String, i64>> {
        let queues = self
            .op("queue_limited", self.driver.queue_limited())
            .await?;
        let usage = self
            .op("queue_limit_usage", self.driver.queue_limit_usage())
            .await?;
        Ok(queues
            .iter()
            .filter(|q| q.limits.any() && q.paused_at.is_none())
            .map(|q| {
                let rows: Vec<QueueKeyUsage> = usage
                    .iter()
                    .filter(|u| u.queue == q.name)
                    .cloned()
                    .collect();
                (
                    q.name.clone(),
                    limits::waiting_because_of_limits(&q.limits, &rows),
                )
            })
            .collect())
    }

    /// Pauses a queue: its jobs are not claimed until it is resumed, and workers give back
    /// those they claimed ahead of a free slot and have not started.
    pub async fn queue_pause(&self, name: &str) -> Result<()> {
        validate_name("queue", name)?;
        self.op("queue_pause", self.driver.queue_pause(name))
            .await?;
        // Workers give back the queue's jobs they claimed ahead and have not started: a paused
        // queue starts nothing (this process's at once, other processes' as they hear of it).
        self.wakeup().notify_control(name);
        Ok(())
    }

    /// How many times a queue was paused or given other limits (0: never, or no such queue).
    /// Workers read it as they start serving the queue and when they hear of a change, to give
    /// back the jobs they claimed ahead under a smaller count.
    pub async fn queue_changes(&self, name: &str) -> Result<i64> {
        self.op("queue_changes", self.driver.queue_changes(name))
            .await
    }

    /// Resumes a paused queue, and wakes its producers.
    pub async fn queue_resume(&self, name: &str) -> Result<()> {
        validate_name("queue", name)?;
        self.op("queue_resume", self.driver.queue_resume(name))
            .await?;
        self.wake_queues([name]);
        Ok(())
    }

    /// Registers a worker process or refreshes its heartbeat, with no lease or limits of its
    /// own (rescuers judge it by theirs). Workers use [`Store::worker_register`].
    pub async fn worker_heartbeat(&self, params: WorkerHeartbeatParams) -> Result<()> {
        self.op("worker_heartbeat", self.driver.worker_heartbeat(params))
            .await
    }

    /// Registers a worker process with its own lease and stuck limits, or refreshes its
    /// heartbeat (and those settings). Rescue judges the worker, and the jobs it claimed, by
    /// these, not by the rescuing process's settings.
    ///
    /// The queues and kinds it serves are checked like any queue name or kind (nothing is
    /// written when one is refused).
    pub async fn worker_register(&self, params: WorkerRegisterParams) -> Result<()> {
        for queue in &params.queues {
            validate_name("queue", queue)?;
        }
        for kind in &params.kinds {
            validate_name("kind", kind)?;
        }
        self.op("worker_register", self.driver.worker_register(params))
            .await
    }

    /// Removes a worker's registration (clean shutdown), and the registrations of workers
    /// silent for more than a day (crashed ones: their jobs were rescued long before).
    pub async fn worker_delete(&self, id: &str) -> Result<()> {
        self.op("worker_delete", self.driver.worker_delete(id))
            .await
    }

    /// Registered workers.
    pub async fn worker_list(&self) -> Result<Vec<WorkerRow>> {
        self.op("worker_list", self.driver.worker_list()).await
    }

    /// How many live workers serve this queue and kind: registered them
    /// ([`WorkerRegisterParams`]) and heartbeated within their own lease, judged as rescue
    /// judges them ([`DEFAULT_LEASE`] for a registration without one). A registration from
    /// before workers registered what they serve counts as serving everything. Names outside
    /// `^[a-z0-9_.-]{1,64}$` are refused.
    pub async fn worker_count_serving(&self, queue: &str, kind: &str) -> Result<i64> {
        validate_name("queue", queue)?;
        validate_name("kind", kind)?;
        let params = WorkerServingParams {
            queue: queue.to_string(),
            kind: kind.to_string(),
            lease: DEFAULT_LEASE,
        };
        self.op(
            "worker_count_serving",
            self.driver.worker_count_serving(params),
        )
        .await
    }

    /// Jobs nobody will run, as things stand: per queue and kind, the jobs due to run
    /// (available, or scheduled/retryable and due) that no live worker serves (see
    /// [`Store::worker_count_serving`]), by queue, then kind. Jobs scheduled for later are left
    /// out: a worker may well be there by then. One pass over the due jobs, as
    /// [`Store::queue_lag`] makes.
    pub async fn job_unserved(&self) -> Result<Vec<UnservedRow>> {
        self.op("job_unserved", self.driver.job_unserved(DEFAULT_LEASE))
            .await
    }

    /// Moves the periodic job's slot forward and inserts its job, in one transaction; returns
    /// the job when this call advanced the slot (and wakes its queue's producers), `None` when
    /// the slot was already taken or seen for the first time (then it is only recorded). The
    /// job is checked first ([`JobInsertParams::check`]); nothing is written when it fails.
    pub async fn periodic_enqueue(
        &self,
        params: PeriodicEnqueueParams,
    ) -> Result<Option<InsertResult>> {
        params.job.check()?;
        let queue = params.job.queue.clone();
        let out = self
            .op("periodic_enqueue", self.driver.periodic_enqueue(params))
            .await?;
        if out.is_some() {
            self.wake_queues([queue.as_str()]);
        }
        Ok(out)
    }
}

/// The operator's pages: jobs by filter, bulk actions, running jobs per worker, periodic
/// schedules, throughput (see [`admin`](super::admin)).
impl Store {
    /// Jobs a filter matches, newest first (keyset pagination by `before_id`).
    pub async fn job_search(&self, params: JobSearchParams) -> Result<Vec<JobRow>> {
        params.filter.check()?;
        if params.limit == 0 {
            return Ok(Vec::new());
        }
        let params = JobSearchParams {
            limit: params.limit.min(MAX_LIST_LIMIT),
            ..params
        };
        self.op("job_search", self.driver.job_search(params)).await
    }

    /// How many jobs a filter matches, and the highest id among them (a bulk action's fence).
    pub async fn job_count_matching(&self, filter: JobFilter) -> Result<MatchCount> {
        filter.check()?;
        self.op("job_count_matching", self.driver.job_count_matching(filter))
            .await
    }

    /// Retries, cancels or deletes every job the filter matches, up to `max_id` (the highest id
    /// the user confirmed: jobs inserted since are not touched) and at most [`BULK_MAX`] (the
    /// newest), in transactions of [`BULK_BATCH`] jobs: cancels and deletes newest first,
    /// retries oldest first (of a sequence's finished jobs, the oldest is retried). Jobs whose
    /// state forbids the action (running ones for retry and delete, finished ones for cancel,
    /// available ones for retry) are matched but not changed. A cancel goes the way of [`Store::job_cancel`]: a running
    /// job is asked to stop and its worker told; retried jobs wake their queues' producers.
    ///
    /// An error part-way is a [`BulkError`] with what the batches committed before it did.
    pub async fn job_bulk(
        &self,
        action: BulkAction,
        filter: JobFilter,
        fence: impl Into<BulkFence>,
    ) -> std::result::Result<BulkOutcome, BulkError> {
        let mut out = BulkOutcome::default();
        match self
            .job_bulk_counting(action, filter, fence.into(), &mut out)
            .await
        {
            Ok(()) => Ok(out),
            Err(error) => Err(BulkError { done: out, error }),
        }
    }

    /// [`Self::job_bulk`], counting into `out` as its batches commit.
    async fn job_bulk_counting(
        &self,
        action: BulkAction,
        filter: JobFilter,
        fence: BulkFence,
        out: &mut BulkOutcome,
    ) -> Result<()> {
        filter.check()?;
        let BulkFence {
            max_id,
            in_progress,
            counted,
        } = fence;
        // The jobs within the fence, below `before`, at most `limit`.
        let fenced = |before: Option<i64>, limit: u32| JobSearchParams {
            filter: filter.clone(),
            before_id: before,
            max_id: Some(max_id),
            not_written_by: in_progress.clone(),
            limit,
        };
        // With a count confirmed, the jobs it may act on are those found now, newest first:
        // jobs that come to match while the batches are written (another operator's cancel, a
        // worker's failure) are left alone. Until 6 Dec the check was made once and the batches
        // searched again, so "delete 3,000" could delete 6,000.
        let mut planned = None;
        if let Some(counted) = counted.filter(|&n| n <= BULK_MAX) {
            let found = self
                .op(
                    "job_search_ids",
                    self.driver
                        .job_search_ids(fenced(None, (counted + 1) as u32)),
                )
                .await?;
            if found.len() as u64 > counted {
                return Err(Error::Conflict(format!(
                    "more jobs match these filters now than the confirmation counted ({counted}): \
                     jobs committed or came to match since; nothing was changed, open the \
                     confirmation again"
                )));
            }
            planned = Some(found.into_iter());
        }
        let mut before = None;
        // Retries go oldest first, so that of a sequence's finished jobs the oldest is the one
        // retried (the others find their sequence busy) whichever batches part them: all the
        // ids are found first (at most BULK_MAX), then written in batches.
        let mut retries: Vec<i64> = Vec::new();
        loop {
            let left = BULK_MAX - out.matched;
            let ids = match planned.as_mut() {
                Some(found) => found.by_ref().take(BULK_BATCH as usize).collect(),
                None if left == 0 => {
                    // One more row would say whether anything was left behind.
                    let more = self.driver.job_search_ids(fenced(before, 1)).await?;
                    out.capped = !more.is_empty();
                    break;
                }
                None => {
                    self.op(
                        "job_search_ids",
                        self.driver
                            .job_search_ids(fenced(before, (BULK_BATCH as u64).min(left) as u32)),
                    )
                    .await?
                }
            };
            let Some(&last) = ids.last() else {
                break;
            };
            before = Some(last);
            out.matched += ids.len() as u64;
            match action {
                BulkAction::Retry => retries.extend(ids),
                BulkAction::Cancel => {
                    let changed = self
                        .op(
                            "job_cancel_many",
                            self.driver.job_cancel_many(ids, filter.states.clone()),
                        )
                        .await?;
                    out.changed += changed.len() as u64;
                    let mut workers = std::collections::BTreeSet::new();
                    for c in &changed {
                        if let (JobState::Running, Some(worker)) = (c.state, &c.attempted_by) {
                            out.cancel_requested += 1;
                            workers.insert(worker.as_str());
                        }
                    }
                    for worker in workers {
                        self.wakeup().notify_cancel(worker);
                    }
                }
                BulkAction::Delete => {
                    out.changed += self
                        .op(
                            "job_delete_many",
                            self.driver.job_delete_many(ids, filter.states.clone()),
                        )
                        .await?;
                }
            }
        }
        retries.reverse();
        for batch in retries.chunks(BULK_BATCH as usize) {
            let changed = self
                .op(
                    "job_retry_many",
                    self.driver
                        .job_retry_many(batch.to_vec(), filter.states.clone()),
                )
                .await?;
            out.changed += changed.len() as u64;
            self.wake_queues(changed.iter().map(|c| c.queue.as_str()));
        }
        Ok(())
    }

    /// Running jobs per worker id.
    pub async fn job_running_by_worker(&self) -> Result<BTreeMap<String, i64>> {
        Ok(self
            .op("job_running_by_worker", self.driver.job_running_by_worker())
            .await?
            .into_iter()
            .collect())
    }

    /// The periodic schedules' records, by name, each with the job of its last slot.
    pub async fn periodic_list(&self) -> Result<Vec<PeriodicRow>> {
        self.op("periodic_list", self.driver.periodic_list()).await
    }

    /// Completed and discarded jobs per minute (UTC), finished at or after `since`.
    pub async fn job_throughput(&self, since: DateTime<Utc>) -> Result<Vec<ThroughputRow>> {
        self.op("job_throughput", self.driver.job_throughput(since))
            .await
    }
}

/// A fenced write's row, or [`Error::Fenced`] when the fence matched none.
fn fenced(fence: &JobFence, row: Option<JobRow>) -> Result<JobRow> {
    row.ok_or(Error::Fenced {
        id: fence.id,
        attempt: fence.attempt,
    })
}
