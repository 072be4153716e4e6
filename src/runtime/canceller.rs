//! User cancels of running jobs: the jobs this worker runs, each with a token that a cancel
//! request fires, and the watcher that finds the requests.
//!
//! `job_cancel` on a running job only records the request (the job stays `running`, so its
//! unique key stays held) and wakes this worker's cancel subscription: through NOTIFY on
//! Postgres, through the `data_version` watcher on SQLite, in-process when the cancel came from
//! this process. The watcher then asks the store which of this worker's running jobs have a
//! request and fires their tokens; the executor stops those jobs and records them `cancelled`
//! (fenced). A look on every heartbeat interval catches a wake-up that was lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Ctx;
use crate::store::JobFence;

/// Shortest time between two looks: on SQLite every commit of any process wakes the watcher.
const MIN_GAP: Duration = Duration::from_millis(100);
/// How soon to look again after a failed look.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// The jobs this worker runs, by id: the attempt it runs and the token a cancel request fires.
#[derive(Debug, Default)]
pub(crate) struct RunningJobs {
    jobs: Mutex<HashMap<i64, (i32, CancellationToken)>>,
}

/// Keeps a job in [`RunningJobs`] while its run lasts.
pub(crate) struct Registration<'a> {
    jobs: &'a RunningJobs,
    id: i64,
    attempt: i32,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut jobs = self.jobs.jobs.lock().unwrap();
        if jobs
            .get(&self.id)
            .is_some_and(|(attempt, _)| *attempt == self.attempt)
        {
            jobs.remove(&self.id);
        }
    }
}

impl RunningJobs {
    /// Registers a run; `by_user` is cancelled when a user asks to cancel it.
    pub(crate) fn register(
        &self,
        id: i64,
        attempt: i32,
        by_user: CancellationToken,
    ) -> Registration<'_> {
        self.jobs.lock().unwrap().insert(id, (attempt, by_user));
        Registration {
            jobs: self,
            id,
            attempt,
        }
    }

    /// The ids of the jobs it runs.
    fn ids(&self) -> Vec<i64> {
        self.jobs.lock().unwrap().keys().copied().collect()
    }

    /// Fires the token of the run a request names (the same attempt); false when this worker
    /// does not run it (any more).
    fn cancel(&self, fence: &JobFence) -> bool {
        match self.jobs.lock().unwrap().get(&fence.id) {
            Some((attempt, token)) if *attempt == fence.attempt => {
                let first = !token.is_cancelled();
                token.cancel();
                first
            }
            _ => false,
        }
    }
}

/// Finds the cancel requests for this worker's running jobs whenever it is woken (and on every
/// heartbeat interval), until `stop`.
pub(super) async fn watch(ctx: Arc<Ctx>, stop: CancellationToken) {
    let wakeup = ctx.store.wakeup().subscribe_cancel(&ctx.identity.id);
    let fallback = ctx.config.lease / 3;
    let mut failing = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = wakeup.notified() => {}
            _ = tokio::time::sleep(if failing { RETRY_AFTER_FAILURE } else { fallback }) => {}
        }
        let running = ctx.running.ids();
        if running.is_empty() {
            continue;
        }
        match ctx
            .store
            .job_cancel_requests(&ctx.identity.id, &running)
            .await
        {
            Ok(requests) => {
                if failing {
                    info!("looking for cancel requests works again");
                }
                failing = false;
                for fence in requests {
                    if ctx.running.cancel(&fence) {
                        info!(
                            job_id = fence.id,
                            attempt = fence.attempt,
                            "cancel requested; stopping the job"
                        );
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
