//! User cancels of running jobs: the jobs this worker runs, each with a token that a cancel
//! request fires, and the watcher that finds the requests.
//!
//! `job_cancel` on a running job only records the request (the job stays `running`, so its
//! unique key stays held) and wakes this worker's cancel subscription: through NOTIFY on
//! Postgres, through the `data_version` watcher on SQLite, in-process when the cancel came from
//! this process. The watcher then asks the store which of the jobs this worker holds (running,
//! and claimed ahead of a free slot: see `producer`) have a request, and fires the tokens of
//! those running; the executor stops them and records them `cancelled` (fenced). A job claimed
//! ahead with a request starts cancelled, and so never runs. A look on every heartbeat
//! interval catches a wake-up that was lost.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Ctx;
use crate::store::{JobFence, WakeupSubscription};

/// Shortest time between two looks: on SQLite every commit of any process wakes the watcher.
const MIN_GAP: Duration = Duration::from_millis(100);
/// How soon to look again after a failed look.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// The jobs this worker runs, and the cancel requests found for jobs it holds but has not
/// started yet.
#[derive(Debug, Default)]
pub(crate) struct RunningJobs {
    jobs: Mutex<Jobs>,
}

#[derive(Debug, Default)]
struct Jobs {
    /// By id: the run under way.
    running: HashMap<i64, Run>,
    /// Requests for attempts not started (claimed ahead, waiting for a slot), as of the last
    /// look: such an attempt starts with its token fired.
    asked: HashSet<(i64, i32)>,
    /// Attempts not started whose parent ran again since their claim (an admin's retry), as
    /// of the last look: such an attempt is given back unstarted instead of started.
    parent_ran_again: HashSet<(i64, i32)>,
}

/// A job's run under way in this worker.
#[derive(Debug)]
struct Run {
    attempt: i32,
    /// Fired by a cancel request.
    by_user: CancellationToken,
    /// Fired when this run is no longer the job's: a later attempt of the job starts in this
    /// worker (it was put back meanwhile: rescued while this worker stalled, say), or a look
    /// finds its row no longer running under this worker at its attempt.
    taken_over: CancellationToken,
    /// Fired once the run is gone.
    gone: CancellationToken,
    /// Its outcome is known and being written: the row may change under it by its own write.
    settling: bool,
}

/// Keeps a job in [`RunningJobs`] while its run lasts.
pub(crate) struct Registration<'a> {
    jobs: &'a RunningJobs,
    id: i64,
    attempt: i32,
    gone: CancellationToken,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut jobs = self.jobs.jobs.lock().unwrap();
        if jobs
            .running
            .get(&self.id)
            .is_some_and(|run| run.attempt == self.attempt)
        {
            jobs.running.remove(&self.id);
        }
        self.gone.cancel();
    }
}

/// A run just registered: what stops it beside a cancel request, and the earlier run of its
/// job still under way here, to wait for.
pub(crate) struct Registered<'a> {
    pub registration: Registration<'a>,
    /// Fired when a later attempt of the job starts here.
    pub taken_over: CancellationToken,
    /// Fired once the earlier attempt of the job that was running here is gone.
    pub earlier: Option<CancellationToken>,
    /// A parent of the job ran again since its claim, found while it waited for a slot: it
    /// is given back unstarted, not started (the give-back judges it again).
    pub parent_ran_again: bool,
}

impl RunningJobs {
    /// Registers a run; `by_user` is cancelled when a user asks to cancel it, and at once when
    /// a look found a request while the job waited to start. An earlier attempt of the same
    /// job still running here is no longer the job's: its `taken_over` fires, and the new run
    /// waits for it to be gone (a job never runs beside itself). A later one already running
    /// makes this one taken over at once.
    pub(crate) fn register(
        &self,
        id: i64,
        attempt: i32,
        by_user: CancellationToken,
    ) -> Registered<'_> {
        let mut jobs = self.jobs.lock().unwrap();
        if jobs.asked.remove(&(id, attempt)) {
            by_user.cancel();
        }
        let parent_ran_again = jobs.parent_ran_again.remove(&(id, attempt));
        let taken_over = CancellationToken::new();
        let gone = CancellationToken::new();
        let mut earlier = None;
        match jobs.running.get(&id) {
            Some(run) if run.attempt > attempt => {
                taken_over.cancel();
                earlier = Some(run.gone.clone());
            }
            Some(run) => {
                run.taken_over.cancel();
                earlier = Some(run.gone.clone());
            }
            None => {}
        }
        if !taken_over.is_cancelled() {
            jobs.running.insert(
                id,
                Run {
                    attempt,
                    by_user,
                    taken_over: taken_over.clone(),
                    gone: gone.clone(),
                    settling: false,
                },
            );
        }
        Registered {
            registration: Registration {
                jobs: self,
                id,
                attempt,
                gone,
            },
            taken_over,
            earlier,
            parent_ran_again,
        }
    }

    /// Of `held`, the jobs with no run under way here (claimed ahead, waiting for a slot).
    fn not_started(&self, held: &[i64]) -> Vec<i64> {
        let jobs = self.jobs.lock().unwrap();
        held.iter()
            .copied()
            .filter(|id| !jobs.running.contains_key(id))
            .collect()
    }

    /// Takes the attempts a look found whose parent ran again since their claim (replacing
    /// what the last look kept).
    fn found_parents_ran_again(&self, fences: Vec<JobFence>) {
        self.jobs.lock().unwrap().parent_ran_again =
            fences.into_iter().map(|f| (f.id, f.attempt)).collect();
    }

    /// The attempt's outcome is known and about to be written (by the executor or the
    /// completer): its row changes by that write, which a look must not take for the job
    /// ending under the run.
    pub(crate) fn settling(&self, id: i64, attempt: i32) {
        let mut jobs = self.jobs.lock().unwrap();
        if let Some(run) = jobs.running.get_mut(&id) {
            if run.attempt == attempt {
                run.settling = true;
            }
        }
    }

    /// The runs under way here whose outcome is not known yet, as (id, attempt).
    fn runs(&self) -> Vec<(i64, i32)> {
        let jobs = self.jobs.lock().unwrap();
        jobs.running
            .iter()
            .filter(|(_, run)| !run.settling)
            .map(|(id, run)| (*id, run.attempt))
            .collect()
    }

    /// Of `runs` (as [`Self::runs`] listed them), those the database no longer has running
    /// under this worker at their attempt (`still`: the fences it has): fires their
    /// `taken_over`, as for a later attempt started here, and returns them. A run gone since
    /// the listing, or replaced by a later attempt, is left alone.
    fn no_longer_the_jobs(&self, runs: Vec<(i64, i32)>, still: Vec<JobFence>) -> Vec<(i64, i32)> {
        let still: HashSet<(i64, i32)> = still.into_iter().map(|f| (f.id, f.attempt)).collect();
        let jobs = self.jobs.lock().unwrap();
        let mut stopped = Vec::new();
        for (id, attempt) in runs {
            if still.contains(&(id, attempt)) {
                continue;
            }
            if let Some(run) = jobs.running.get(&id) {
                if run.attempt == attempt && !run.settling && !run.taken_over.is_cancelled() {
                    run.taken_over.cancel();
                    stopped.push((id, attempt));
                }
            }
        }
        stopped
    }

    /// Takes the requests a look found (for every job this worker holds): fires the tokens of
    /// those running, and keeps the rest for their start (replacing what the last look kept:
    /// a request stays until its job ends, so each look finds all that still matter). Returns
    /// the requests whose token it fired just now.
    fn found(&self, requests: Vec<JobFence>) -> Vec<JobFence> {
        let mut jobs = self.jobs.lock().unwrap();
        let mut asked = HashSet::new();
        let mut fired = Vec::new();
        for fence in requests {
            match jobs.running.get(&fence.id) {
                Some(run) if run.attempt == fence.attempt => {
                    if !run.by_user.is_cancelled() {
                        run.by_user.cancel();
                        fired.push(fence);
                    }
                }
                _ => {
                    asked.insert((fence.id, fence.attempt));
                }
            }
        }
        jobs.asked = asked;
        fired
    }
}

/// Finds the cancel requests for the jobs this worker holds whenever it is woken (and on every
/// heartbeat interval), until `stop`. `wakeup` is this worker's cancel subscription, taken
/// before its first claim: the store counts cancel news only for workers subscribed in this
/// process, and a job's start compares those counts ([`crate::store::Wakeup::cancel_wakeups`]).
pub(super) async fn watch(ctx: Arc<Ctx>, wakeup: WakeupSubscription, stop: CancellationToken) {
    let fallback = ctx.config.lease / 3;
    let mut failing = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = wakeup.notified() => {}
            _ = tokio::time::sleep(if failing { RETRY_AFTER_FAILURE } else { fallback }) => {}
        }
        // Every job it holds, not only those running: one claimed ahead of a free slot may be
        // cancelled while it waits, and this wake-up is the only one its request sends. (A
        // claim whose reply is not back yet has its jobs outside `owned`: a request committed
        // in that moment is found by the next look. Waiting here for the claims in flight
        // closed that gap but held every claim up behind each look, up to 10 times a second
        // on SQLite while a queue drains: 3 alternating drains were 5-17 % slower.)
        let held = ctx.owned.ids();
        if held.is_empty() {
            continue;
        }
        match ctx.store.job_cancel_requests(&ctx.identity.id, &held).await {
            Ok(requests) => {
                if failing {
                    info!("looking for cancel requests works again");
                }
                failing = false;
                for fence in ctx.running.found(requests) {
                    info!(
                        job_id = fence.id,
                        attempt = fence.attempt,
                        "cancel requested; stopping the job"
                    );
                }
                // Runs no longer their job's: the job was rescued, cancelled or claimed again
                // while this worker stalled past its lease (a stopped process, a suspended
                // host). They are stopped as a run a later attempt took over is, without an
                // outcome; left running, one went on to its end, however long, beside the
                // job's next run or after a cancel that freed its unique key (review of 6 Dec).
                let runs = ctx.running.runs();
                if !runs.is_empty() {
                    let ids: Vec<i64> = runs.iter().map(|(id, _)| *id).collect();
                    match ctx.store.job_running_among(&ctx.identity.id, &ids).await {
                        Ok(still) => {
                            for (id, attempt) in ctx.running.no_longer_the_jobs(runs, still) {
                                warn!(
                                    job_id = id,
                                    attempt,
                                    "this run is no longer its job's (rescued, cancelled or claimed again while this worker stalled); stopping it"
                                );
                            }
                        }
                        Err(e) => {
                            warn!(error = %e, "looking for runs no longer their job's failed; retrying");
                            failing = true;
                        }
                    }
                }
                // Those waiting for a slot whose parent an admin retried since their claim
                // (the retry found them running, and left them): given back at their start.
                let waiting = ctx.running.not_started(&held);
                match ctx
                    .store
                    .job_parents_ran_again(&ctx.identity.id, &waiting)
                    .await
                {
                    Ok(found) => ctx.running.found_parents_ran_again(found),
                    Err(e) => {
                        warn!(error = %e, "looking for jobs whose parent ran again failed; retrying");
                        failing = true;
                    }
                }
            }
            Err(e) => {
                if !failing {
                    warn!(error = %e, "looking for cancel requests failed; retrying");
                }
                failing = true;
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(MIN_GAP) => {}
        }
    }
}
