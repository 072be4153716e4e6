//! A real driver whose completions can be held back: `job_complete_many` waits while the gate
//! is closed; the reconcile's lookup can be slowed down; everything else passes through. A slow or unreachable database cannot be made to
//! slow down only completions from outside. Heartbeats and completions can also be made to
//! fail, as a database that refuses them would.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use porter::store::*;
use porter::{JobRow, JobState, Result};

/// See the module docs.
pub struct GatedStore {
    inner: Arc<dyn Driver>,
    open: tokio::sync::watch::Sender<bool>,
    heartbeats_fail: AtomicBool,
    completions_fail: AtomicBool,
    /// Completions fail as an unreachable database's do (retried by the runtime).
    completions_unavailable: AtomicBool,
    /// The heartbeats and completions written, in order (see [`GatedStore::written`]).
    written: std::sync::Mutex<Vec<&'static str>>,
    /// The next completion write panics (once).
    completion_panics: AtomicBool,
    /// The next claim panics (once).
    claim_panics: AtomicBool,
    /// Milliseconds each `job_list_running` (the reconcile's lookup) takes at least.
    slow_listings: AtomicU64,
    /// Milliseconds each `job_release` (a job given back) takes at least.
    slow_releases: AtomicU64,
    /// `job_list_running` (the reconcile's lookup) fails as an unreachable database does.
    listings_fail: AtomicBool,
    /// `job_release` fails as an unreachable database does (retried by the runtime).
    releases_fail: AtomicBool,
    /// Gives back of jobs claimed ahead are refused (a conflict, which is not retried).
    give_backs_refused: AtomicBool,
    /// A worker's cancels (`job_cancel_running`) are refused (a conflict, not retried).
    cancels_refused: AtomicBool,
    /// Reads of the job counts fail (`fail_counts`).
    counts_fail: AtomicBool,
    /// Reads of a queue's count of changes fail (see [`GatedStore::fail_queue_changes`]).
    queue_changes_fail: AtomicBool,
    /// Cancels refused so far.
    cancels_refused_count: AtomicU64,
    /// Claims of this queue wait while it is set (a claim stalled in the database).
    stalled_claims: tokio::sync::watch::Sender<Option<String>>,
    /// The bound (`since`) of each `job_list_running` (the reconcile's lookup), in order.
    listings: std::sync::Mutex<Vec<DateTime<Utc>>>,
    /// Lookups of running jobs that have returned (see [`GatedStore::listed`]).
    listed: AtomicU64,
    /// Jobs a worker's look found whose parent ran again (see [`GatedStore::parents_ran_again`]).
    parents_ran_again: std::sync::Mutex<std::collections::BTreeSet<i64>>,
    /// Replies to claims of this queue wait, the claim made, while it is set (a reply held
    /// up on its way back); so do those of completion writes that claim along for it.
    stalled_replies: tokio::sync::watch::Sender<Option<String>>,
    /// Runs once before the next bulk write (retry, cancel or delete of many), after the bulk
    /// found its jobs: what another operator or worker does in between.
    before_bulk: std::sync::Mutex<Option<Meddle>>,
    /// See [`GatedStore::before_output_read`].
    before_outputs: std::sync::Mutex<Option<Meddle>>,
    /// Progress writes wait while it is false (see [`GatedStore::hold_progress`]).
    progress_open: tokio::sync::watch::Sender<bool>,
    /// The next progress write of a value `{"panic": true}` panics (once).
    progress_panics: AtomicBool,
    /// The next worker's cancel (`job_cancel_running`) panics (once).
    cancel_panics: AtomicBool,
    /// Bulk writes (retry, cancel or delete of many) begun so far.
    bulk_writes: AtomicU64,
    /// Bulk writes after this many fail as a database's error would (see
    /// [`GatedStore::fail_bulk_writes_after`]).
    bulk_fail_after: AtomicU64,
    /// Bulk writes after this many wait while `bulk_open` is false (see
    /// [`GatedStore::hold_bulk_writes_after`]).
    bulk_hold_after: AtomicU64,
    bulk_open: tokio::sync::watch::Sender<bool>,
    /// Bulk writes waiting at the gate now.
    bulk_waiting: tokio::sync::watch::Sender<u64>,
    /// A bulk action's searches for its jobs (`job_search_ids`) wait while it is false.
    bulk_reads_open: tokio::sync::watch::Sender<bool>,
}

/// See [`GatedStore::before_bulk_write`].
pub type Meddle = Box<dyn FnOnce() -> futures::future::BoxFuture<'static, ()> + Send>;

impl GatedStore {
    /// A pass-through driver (the one under `store`) with the gate open.
    pub fn new(store: Arc<Store>) -> Arc<Self> {
        Arc::new(GatedStore {
            inner: store.driver().clone(),
            open: tokio::sync::watch::channel(true).0,
            heartbeats_fail: AtomicBool::new(false),
            completions_fail: AtomicBool::new(false),
            completions_unavailable: AtomicBool::new(false),
            written: Default::default(),
            completion_panics: AtomicBool::new(false),
            claim_panics: AtomicBool::new(false),
            slow_listings: AtomicU64::new(0),
            before_bulk: std::sync::Mutex::new(None),
            bulk_writes: AtomicU64::new(0),
            bulk_fail_after: AtomicU64::new(u64::MAX),
            bulk_hold_after: AtomicU64::new(u64::MAX),
            bulk_open: tokio::sync::watch::channel(true).0,
            bulk_waiting: tokio::sync::watch::channel(0).0,
            bulk_reads_open: tokio::sync::watch::channel(true).0,
            before_outputs: std::sync::Mutex::new(None),
            slow_releases: AtomicU64::new(0),
            listings_fail: AtomicBool::new(false),
            releases_fail: AtomicBool::new(false),
            give_backs_refused: AtomicBool::new(false),
            cancels_refused: AtomicBool::new(false),
            counts_fail: AtomicBool::new(false),
            queue_changes_fail: AtomicBool::new(false),
            cancels_refused_count: AtomicU64::new(0),
            stalled_claims: tokio::sync::watch::Sender::new(None),
            listings: Default::default(),
            listed: AtomicU64::new(0),
            parents_ran_again: std::sync::Mutex::default(),
            stalled_replies: tokio::sync::watch::Sender::new(None),
            progress_open: tokio::sync::watch::Sender::new(true),
            progress_panics: AtomicBool::new(false),
            cancel_panics: AtomicBool::new(false),
        })
    }

    /// Each job given back takes `delay` from now on (before it is written).
    pub fn slow_releases(&self, delay: std::time::Duration) {
        self.slow_releases
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// `meddle` runs once, before the next bulk write goes to the database.
    pub fn before_bulk_write(&self, meddle: Meddle) {
        *self.before_bulk.lock().unwrap() = Some(meddle);
    }

    /// Writes of a running job's progress wait from now on while `hold` (a write held up on
    /// its way), and go through again, the waiting ones too, once it is false.
    pub fn hold_progress(&self, hold: bool) {
        self.progress_open.send_replace(!hold);
    }

    /// The next write of a progress `{"panic": true}` panics inside the driver, as a bug would.
    pub fn panic_next_marked_progress(&self) {
        self.progress_panics.store(true, Ordering::SeqCst);
    }

    /// The next worker's cancel of a job (`job_cancel_running`) panics inside the driver.
    pub fn panic_next_cancel(&self) {
        self.cancel_panics.store(true, Ordering::SeqCst);
    }

    /// `meddle` runs once, before the next read of recorded outputs goes to the database.
    pub fn before_output_read(&self, meddle: Meddle) {
        *self.before_outputs.lock().unwrap() = Some(meddle);
    }

    async fn meddle_outputs(&self) {
        let meddle = self.before_outputs.lock().unwrap().take();
        if let Some(meddle) = meddle {
            meddle().await;
        }
    }

    async fn meddle(&self) -> Result<()> {
        let meddle = self.before_bulk.lock().unwrap().take();
        if let Some(meddle) = meddle {
            meddle().await;
        }
        let n = self.bulk_writes.fetch_add(1, Ordering::SeqCst);
        if n >= self.bulk_fail_after.load(Ordering::SeqCst) {
            return Err(porter::Error::Database(
                "bulk write failed (injected)".into(),
            ));
        }
        if n >= self.bulk_hold_after.load(Ordering::SeqCst) {
            self.bulk_waiting.send_modify(|w| *w += 1);
            let _ = self.bulk_open.subscribe().wait_for(|open| *open).await;
            self.bulk_waiting.send_modify(|w| *w -= 1);
        }
        Ok(())
    }

    /// Bulk writes after the first `n` from now on fail, as a database's error would.
    pub fn fail_bulk_writes_after(&self, n: u64) {
        self.bulk_fail_after.store(n, Ordering::SeqCst);
    }

    /// Bulk writes after the first `n` from now on wait, until [`Self::release_bulk_writes`].
    pub fn hold_bulk_writes_after(&self, n: u64) {
        self.bulk_open.send_replace(false);
        self.bulk_hold_after.store(n, Ordering::SeqCst);
    }

    /// A bulk action's searches for its jobs wait from now on while `hold`.
    pub fn hold_bulk_reads(&self, hold: bool) {
        self.bulk_reads_open.send_replace(!hold);
    }

    /// Held bulk writes go on.
    pub fn release_bulk_writes(&self) {
        self.bulk_open.send_replace(true);
    }

    /// Returns once a bulk write waits at the gate.
    pub async fn bulk_write_held(&self) {
        let _ = self.bulk_waiting.subscribe().wait_for(|w| *w > 0).await;
    }

    /// Reads of the job counts fail (as in an outage) from now on, or answer again.
    pub fn fail_counts(&self, fail: bool) {
        self.counts_fail.store(fail, Ordering::SeqCst);
    }

    /// Reads of a queue's count of pauses and changes of limits fail (as in an outage) from now
    /// on, or answer again.
    pub fn fail_queue_changes(&self, fail: bool) {
        self.queue_changes_fail.store(fail, Ordering::SeqCst);
    }

    /// A store over this driver, as `store::open` gives one over a real driver.
    pub fn store(self: &Arc<Self>) -> Arc<Store> {
        Arc::new(Store::new(self.clone()))
    }

    /// Completions wait from now on.
    pub fn close(&self) {
        self.open.send_replace(false);
    }

    /// Completions go through again (the waiting ones too).
    pub fn open(&self) {
        self.open.send_replace(true);
    }

    /// Worker heartbeats (registrations) fail while `fail` holds.
    pub fn fail_heartbeats(&self, fail: bool) {
        self.heartbeats_fail.store(fail, Ordering::SeqCst);
    }

    /// The reconcile's lookup of a worker's running jobs takes `delay` from now on.
    pub fn slow_listings(&self, delay: std::time::Duration) {
        self.slow_listings
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// The next write of completions panics inside the driver, as a bug would.
    pub fn panic_next_completion(&self) {
        self.completion_panics.store(true, Ordering::SeqCst);
    }

    /// The next claim panics inside the driver, as a bug would.
    pub fn panic_next_claim(&self) {
        self.claim_panics.store(true, Ordering::SeqCst);
    }

    fn maybe_panic(&self) {
        if self.completion_panics.swap(false, Ordering::SeqCst) {
            panic!("completion write panicked (injected)");
        }
    }

    /// The reconcile's lookup of this worker's running jobs fails as an unreachable
    /// database's reads do while `fail` holds.
    pub fn fail_listings(&self, fail: bool) {
        self.listings_fail.store(fail, Ordering::SeqCst);
    }

    /// Releases (jobs given back or put back) fail as an unreachable database's writes do
    /// while `fail` holds.
    pub fn fail_releases(&self, fail: bool) {
        self.releases_fail.store(fail, Ordering::SeqCst);
    }

    /// Claims of `queue` stall (wait before reaching the database) until `None` is given.
    pub fn stall_claims(&self, queue: Option<&str>) {
        self.stalled_claims.send_replace(queue.map(str::to_string));
    }

    /// Replies to claims of `queue` (and to completion writes that claim along for it) stall,
    /// the claim made in the database, until `None`.
    pub fn stall_claim_replies(&self, queue: Option<&str>) {
        self.stalled_replies.send_replace(queue.map(str::to_string));
    }

    /// The bound of each reconcile lookup so far (the Unix epoch: a lookup of all the
    /// worker's running jobs).
    /// How many of the reconcile's lookups of running jobs have returned (those of
    /// [`Self::listings`] are counted as they start).
    pub fn listed(&self) -> u64 {
        self.listed.load(Ordering::SeqCst)
    }

    /// The jobs any worker's look has found, so far, waiting for a slot after a parent of
    /// theirs ran again.
    pub fn parents_ran_again(&self) -> std::collections::BTreeSet<i64> {
        self.parents_ran_again.lock().unwrap().clone()
    }

    pub fn listings(&self) -> Vec<DateTime<Utc>> {
        self.listings.lock().unwrap().clone()
    }

    /// Gives back of jobs claimed ahead (`job_release` with `GIVEN_BACK` as its reason) are
    /// refused (a conflict, which is not retried) while `refuse` holds.
    pub fn refuse_give_backs(&self, refuse: bool) {
        self.give_backs_refused.store(refuse, Ordering::SeqCst);
    }

    /// A worker's cancels of its jobs are refused (a conflict, which is not retried) while
    /// `refuse` holds.
    pub fn refuse_cancels(&self, refuse: bool) {
        self.cancels_refused.store(refuse, Ordering::SeqCst);
    }

    /// How many cancels [`Self::refuse_cancels`] refused so far.
    pub fn cancels_refused(&self) -> u64 {
        self.cancels_refused_count.load(Ordering::SeqCst)
    }

    /// Completions fail while `fail` holds, as a write given up on at once does (a timeout:
    /// neither retried nor a refusal of the rows, which the completer would record as the
    /// job's failure instead).
    pub fn fail_completions(&self, fail: bool) {
        self.completions_fail.store(fail, Ordering::SeqCst);
    }

    /// Completions fail as an unreachable database's do (retried) while `fail` holds.
    pub fn completions_unavailable(&self, fail: bool) {
        self.completions_unavailable.store(fail, Ordering::SeqCst);
    }

    /// The heartbeats (`"heartbeat"`, or `"unsteady heartbeat"` when the worker said it still
    /// had outcomes failing) and completions (`"completion"`) written so far, in the order they
    /// were.
    pub fn written(&self) -> Vec<&'static str> {
        self.written.lock().unwrap().clone()
    }
}

fn injected(what: &str) -> porter::Error {
    porter::Error::Unavailable(format!("{what} failed (injected)"))
}

#[async_trait::async_trait]
impl Driver for GatedStore {
    fn database(&self) -> Option<Database<'_>> {
        self.inner.database()
    }
    fn backend(&self) -> Backend {
        self.inner.backend()
    }
    fn wakeup(&self) -> &Arc<Wakeup> {
        self.inner.wakeup()
    }
    async fn now(&self) -> Result<DateTime<Utc>> {
        self.inner.now().await
    }
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
    async fn job_insert_many(&self, jobs: Vec<JobInsertParams>) -> Result<Vec<InsertResult>> {
        self.inner.job_insert_many(jobs).await
    }
    async fn job_get(&self, id: i64) -> Result<Option<JobRow>> {
        self.inner.job_get(id).await
    }
    async fn job_list(&self, params: JobListParams) -> Result<Vec<JobRow>> {
        self.inner.job_list(params).await
    }
    async fn job_counts(&self) -> Result<Vec<JobCountRow>> {
        if self.counts_fail.load(Ordering::SeqCst) {
            return Err(porter::Error::Unavailable("counts fail (injected)".into()));
        }
        self.inner.job_counts().await
    }
    async fn job_claim(&self, params: JobClaimParams, ahead: ClaimAhead) -> Result<JobClaimed> {
        if self.claim_panics.swap(false, Ordering::SeqCst) {
            panic!("claim panicked (injected)");
        }
        let mut stalled = self.stalled_claims.subscribe();
        let _ = stalled
            .wait_for(|q| q.as_deref() != Some(params.queue.as_str()))
            .await;
        let queue = params.queue.clone();
        let claimed = self.inner.job_claim(params, ahead).await;
        let mut stalled = self.stalled_replies.subscribe();
        let _ = stalled
            .wait_for(|q| q.as_deref() != Some(queue.as_str()))
            .await;
        claimed
    }
    async fn job_complete_many(&self, fences: Vec<JobFence>) -> Result<Vec<JobFence>> {
        let mut open = self.open.subscribe();
        let _ = open.wait_for(|o| *o).await;
        self.maybe_panic();
        if self.completions_fail.load(Ordering::SeqCst) {
            return Err(porter::Error::Timeout(std::time::Duration::from_secs(30)));
        }
        if self.completions_unavailable.load(Ordering::SeqCst) {
            return Err(injected("completion"));
        }
        let written = self.inner.job_complete_many(fences).await;
        if written.is_ok() {
            self.written.lock().unwrap().push("completion");
        }
        written
    }
    async fn job_complete_claim(
        &self,
        fences: Vec<JobFence>,
        claims: Vec<JobClaimParams>,
    ) -> Result<(Vec<JobFence>, Vec<Vec<JobRow>>)> {
        let mut open = self.open.subscribe();
        let _ = open.wait_for(|o| *o).await;
        self.maybe_panic();
        if self.completions_fail.load(Ordering::SeqCst) {
            return Err(porter::Error::Timeout(std::time::Duration::from_secs(30)));
        }
        if self.completions_unavailable.load(Ordering::SeqCst) {
            return Err(injected("completion"));
        }
        let queues: Vec<String> = claims.iter().map(|c| c.queue.clone()).collect();
        let written = self.inner.job_complete_claim(fences, claims).await;
        if written.is_ok() {
            self.written.lock().unwrap().push("completion");
        }
        let mut stalled = self.stalled_replies.subscribe();
        let _ = stalled
            .wait_for(|q| q.as_ref().is_none_or(|q| !queues.contains(q)))
            .await;
        written
    }
    async fn job_fail(&self, params: JobFailParams) -> Result<Option<JobRow>> {
        self.inner.job_fail(params).await
    }
    async fn job_snooze(&self, params: JobSnoozeParams) -> Result<Option<JobRow>> {
        self.inner.job_snooze(params).await
    }
    async fn worker_register(&self, params: WorkerRegisterParams) -> Result<()> {
        if self.heartbeats_fail.load(Ordering::SeqCst) {
            return Err(injected("heartbeat"));
        }
        let unsteady = params.unsteady;
        let written = self.inner.worker_register(params).await;
        if written.is_ok() {
            let what = if unsteady {
                "unsteady heartbeat"
            } else {
                "heartbeat"
            };
            self.written.lock().unwrap().push(what);
        }
        written
    }
    async fn job_output_record(&self, params: JobRecordParams) -> Result<bool> {
        if params.progress.is_some() {
            let mut open = self.progress_open.subscribe();
            let _ = open.wait_for(|o| *o).await;
        }
        if params.progress == Some(serde_json::json!({"panic": true}))
            && self.progress_panics.swap(false, Ordering::SeqCst)
        {
            panic!("progress write panicked (injected)");
        }
        self.inner.job_output_record(params).await
    }
    async fn job_output_get(&self, ids: Vec<i64>) -> Result<Vec<(i64, JobOutput)>> {
        self.meddle_outputs().await;
        self.inner.job_output_get(ids).await
    }
    async fn job_parent_outputs(
        &self,
        id: i64,
    ) -> Result<Vec<(JobLink, Option<serde_json::Value>)>> {
        self.meddle_outputs().await;
        self.inner.job_parent_outputs(id).await
    }
    async fn job_deps(&self, id: i64, limit: Option<u32>) -> Result<JobDeps> {
        self.inner.job_deps(id, limit).await
    }
    async fn batch_insert(
        &self,
        params: porter::store::BatchInsertParams,
    ) -> Result<porter::store::BatchInserted> {
        self.inner.batch_insert(params).await
    }
    async fn batch_list(
        &self,
        before_id: Option<i64>,
        limit: u32,
        only: Option<i64>,
    ) -> Result<Vec<porter::store::BatchRow>> {
        self.inner.batch_list(before_id, limit, only).await
    }
    async fn workflow_insert(
        &self,
        params: porter::store::WorkflowInsertParams,
    ) -> Result<porter::store::WorkflowInserted> {
        self.inner.workflow_insert(params).await
    }
    async fn workflow_list(
        &self,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<porter::store::WorkflowRow>> {
        self.inner.workflow_list(before_id, limit).await
    }
    async fn job_workflow(&self, id: i64) -> Result<Option<porter::store::workflow::JobWorkflow>> {
        self.inner.job_workflow(id).await
    }
    async fn workflow_get(
        &self,
        id: i64,
        page: porter::store::StepPage,
    ) -> Result<Option<porter::store::WorkflowParts>> {
        self.inner.workflow_get(id, page).await
    }
    async fn workflow_cancel(&self, id: i64) -> Result<Option<Vec<JobChange>>> {
        self.inner.workflow_cancel(id).await
    }
    async fn job_list_running(
        &self,
        worker_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<JobFence>> {
        self.listings.lock().unwrap().push(since);
        if self.listings_fail.load(Ordering::SeqCst) {
            return Err(injected("listing"));
        }
        let delay = self.slow_listings.load(Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        let listed = self.inner.job_list_running(worker_id, since).await;
        self.listed.fetch_add(1, Ordering::SeqCst);
        listed
    }
    async fn job_release(&self, params: JobReleaseParams) -> Result<Option<JobRow>> {
        let ms = self.slow_releases.load(Ordering::SeqCst);
        if ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        if self.releases_fail.load(Ordering::SeqCst) {
            return Err(injected("release"));
        }
        if self.give_backs_refused.load(Ordering::SeqCst)
            && params.reason == porter::runtime::GIVEN_BACK
        {
            return Err(porter::Error::Conflict(
                "give-back refused (injected)".into(),
            ));
        }
        self.inner.job_release(params).await
    }
    async fn job_cancel_running(&self, params: JobCancelRunningParams) -> Result<Option<JobRow>> {
        if self.cancel_panics.swap(false, Ordering::SeqCst) {
            panic!("cancel panicked (injected)");
        }
        if self.cancels_refused.load(Ordering::SeqCst) {
            self.cancels_refused_count.fetch_add(1, Ordering::SeqCst);
            return Err(porter::Error::Conflict("cancel refused (injected)".into()));
        }
        self.inner.job_cancel_running(params).await
    }
    async fn job_cancel(&self, id: i64) -> Result<Option<JobRow>> {
        self.inner.job_cancel(id).await
    }
    async fn job_cancel_requests(&self, worker_id: &str, among: &[i64]) -> Result<Vec<JobFence>> {
        self.inner.job_cancel_requests(worker_id, among).await
    }

    async fn job_running_among(&self, worker_id: &str, among: &[i64]) -> Result<Vec<JobFence>> {
        self.inner.job_running_among(worker_id, among).await
    }

    async fn job_completed_among(&self, worker_id: &str, among: &[i64]) -> Result<Vec<JobFence>> {
        self.inner.job_completed_among(worker_id, among).await
    }
    async fn job_parents_ran_again(&self, worker_id: &str, among: &[i64]) -> Result<Vec<JobFence>> {
        let found = self.inner.job_parents_ran_again(worker_id, among).await?;
        self.parents_ran_again
            .lock()
            .unwrap()
            .extend(found.iter().map(|f| f.id));
        Ok(found)
    }
    async fn job_retry(&self, id: i64) -> Result<Option<JobRow>> {
        self.inner.job_retry(id).await
    }
    async fn job_delete_finalized(&self, params: JobDeleteFinalizedParams) -> Result<u64> {
        self.inner.job_delete_finalized(params).await
    }
    async fn job_rescue(&self, params: JobRescueParams) -> Result<Rescued> {
        self.inner.job_rescue(params).await
    }
    async fn queue_due(&self) -> Result<Vec<QueueDueRow>> {
        self.inner.queue_due().await
    }
    async fn job_links(
        &self,
        id: i64,
        children: bool,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<porter::store::JobLink>> {
        self.inner.job_links(id, children, after_id, limit).await
    }
    async fn queue_list(&self, after: Option<String>, limit: u32) -> Result<Vec<QueueRow>> {
        self.inner.queue_list(after, limit).await
    }
    async fn queue_limited(&self) -> Result<Vec<QueueRow>> {
        self.inner.queue_limited().await
    }
    async fn queue_limit_set(&self, params: QueueLimitParams) -> Result<QueueRow> {
        self.inner.queue_limit_set(params).await
    }
    async fn queue_limit_usage(&self) -> Result<Vec<QueueKeyUsage>> {
        self.inner.queue_limit_usage().await
    }
    async fn queue_pause(&self, name: &str) -> Result<()> {
        self.inner.queue_pause(name).await
    }
    async fn queue_changes(&self, name: &str) -> Result<i64> {
        if self.queue_changes_fail.load(Ordering::SeqCst) {
            return Err(injected("queue_changes"));
        }
        self.inner.queue_changes(name).await
    }
    async fn queue_resume(&self, name: &str) -> Result<()> {
        self.inner.queue_resume(name).await
    }
    async fn worker_heartbeat(&self, params: WorkerHeartbeatParams) -> Result<()> {
        if self.heartbeats_fail.load(Ordering::SeqCst) {
            return Err(injected("heartbeat"));
        }
        self.inner.worker_heartbeat(params).await
    }
    async fn worker_delete(&self, id: &str) -> Result<()> {
        self.inner.worker_delete(id).await
    }
    async fn worker_list(&self) -> Result<Vec<WorkerRow>> {
        self.inner.worker_list().await
    }
    async fn worker_count_serving(&self, params: WorkerServingParams) -> Result<i64> {
        self.inner.worker_count_serving(params).await
    }
    async fn job_unserved(&self, lease: std::time::Duration) -> Result<Vec<UnservedRow>> {
        self.inner.job_unserved(lease).await
    }
    async fn periodic_enqueue(
        &self,
        params: PeriodicEnqueueParams,
    ) -> Result<Option<InsertResult>> {
        self.inner.periodic_enqueue(params).await
    }
    // The operator's pages: passed through to the driver underneath, ungated.
    async fn job_search(&self, p: JobSearchParams) -> Result<Vec<JobRow>> {
        self.inner.job_search(p).await
    }
    async fn job_search_ids(&self, p: JobSearchParams) -> Result<Vec<i64>> {
        let _ = self
            .bulk_reads_open
            .subscribe()
            .wait_for(|open| *open)
            .await;
        self.inner.job_search_ids(p).await
    }
    async fn job_count_matching(&self, filter: JobFilter) -> Result<MatchCount> {
        self.inner.job_count_matching(filter).await
    }
    async fn job_retry_many(&self, ids: Vec<i64>, states: Vec<JobState>) -> Result<Vec<JobChange>> {
        self.meddle().await?;
        self.inner.job_retry_many(ids, states).await
    }
    async fn job_cancel_many(
        &self,
        ids: Vec<i64>,
        states: Vec<JobState>,
    ) -> Result<Vec<JobChange>> {
        self.meddle().await?;
        self.inner.job_cancel_many(ids, states).await
    }
    async fn job_delete_many(&self, ids: Vec<i64>, states: Vec<JobState>) -> Result<u64> {
        self.meddle().await?;
        self.inner.job_delete_many(ids, states).await
    }
    async fn job_running_by_worker(&self) -> Result<Vec<(String, i64)>> {
        self.inner.job_running_by_worker().await
    }
    async fn periodic_list(&self) -> Result<Vec<PeriodicRow>> {
        self.inner.periodic_list().await
    }
    async fn job_throughput(&self, since: DateTime<Utc>) -> Result<Vec<ThroughputRow>> {
        self.inner.job_throughput(since).await
    }
}
