//! One producer per queue: claims due jobs into the queue's free slots and hands them to the
//! executor; sleeps until a wake-up or the poll interval when the queue is empty.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tracing::{info, warn};

use super::{executor, Ctx, MAX_CLAIM};
use crate::store::JobClaimParams;

/// How soon a producer whose claim a queue limit held back looks again.
const LIMIT_RECHECK: Duration = Duration::from_millis(50);

pub(super) async fn run(ctx: Arc<Ctx>, queue: String, limit: usize) {
    let slots = Arc::new(Semaphore::new(limit));
    let wakeup = ctx.store.wakeup().subscribe(&queue);
    let kinds = ctx.workers.kinds();
    let mut failures = 0u32;
    loop {
        if ctx.stop_claiming.is_cancelled() {
            return;
        }
        // Wait for a free slot.
        if slots.available_permits() == 0 {
            tokio::select! {
                permit = slots.acquire() => drop(permit),
                _ = ctx.stop_claiming.cancelled() => return,
            }
        }
        // A worker whose heartbeat is overdue takes on no new work until it is recorded again.
        if !ctx.may_claim().await {
            return;
        }
        let free = slots.available_permits().min(MAX_CLAIM);
        let params = JobClaimParams {
            queue: queue.clone(),
            kinds: kinds.clone(),
            limit: free as u32,
            worker_id: ctx.identity.id.clone(),
        };
        // Claims hold the reconcile off until their jobs are known (see `reconcile`).
        let claiming = ctx.claiming.read().await;
        let (jobs, held_back) = match ctx.store.job_claim_limited(params).await {
            Ok(claimed) => {
                let (jobs, held_back) = (claimed.jobs, claimed.held_back);
                ctx.owned.insert_all(jobs.iter().map(|j| (j.id, j.attempt)));
                drop(claiming);
                if failures > 0 {
                    info!(queue, "claiming works again");
                }
                failures = 0;
                (jobs, held_back)
            }
            Err(e) => {
                // A claim whose reply was lost may still have taken jobs: the reconcile finds
                // them (running under this worker, unknown to it) and puts them back.
                drop(claiming);
                failures += 1;
                if failures == 1 {
                    warn!(queue, error = %e, "claiming jobs failed; retrying");
                }
                let backoff = Duration::from_millis(100 * u64::from(failures.min(50)));
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = ctx.stop_claiming.cancelled() => return,
                }
                continue;
            }
        };
        let claimed = jobs.len();
        ctx.completer.started(claimed);
        for job in jobs {
            let permit = slots
                .clone()
                .try_acquire_owned()
                .expect("a slot per claimed job");
            ctx.jobs.spawn(executor::execute(ctx.clone(), job, permit));
        }
        if claimed == free || (held_back && claimed > 0) {
            // The queue may hold more: claim again as soon as a slot frees. (A claim held back
            // by a per-key limit that still took jobs may find more of other keys at once.)
            continue;
        }
        // Jobs held back by a queue limit wait for slots that free up in any process, which
        // wakes nobody here: look again soon rather than at the next poll.
        let wait = if held_back {
            LIMIT_RECHECK.min(ctx.config.poll_interval)
        } else {
            ctx.config.poll_interval
        };
        tokio::select! {
            _ = wakeup.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = ctx.stop_claiming.cancelled() => return,
        }
    }
}
