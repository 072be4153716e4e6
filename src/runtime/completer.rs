//! Records completions in batches: one statement (or one grouped transaction) per batch.
//! Other outcomes are written at once by the executor.
//!
//! A completion frees its job's slot when the job returns, but keeps its held permit (see
//! `producer`) until it is written, as the executor does for every other outcome: so a queue
//! never holds more claimed but unrecorded jobs than [`super::producer::HOLD_FACTOR`] times its
//! concurrency, and a crash costs at most that many runs again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Mutex};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::slot::Slot;
use crate::error::Error;
use crate::events::{AttemptEnded, JobEvents};
use crate::store::{JobFence, Store};

/// Most completions written in one batch.
const MAX_BATCH: usize = 1000;
/// Longest a completion waits for the completions of other running jobs to join its batch.
const COALESCE: Duration = Duration::from_millis(1);

enum Msg {
    Complete(JobFence, Slot, AttemptEnded),
    Flush(oneshot::Sender<()>),
}

/// Handle to the completer task.
pub(crate) struct Completer {
    tx: mpsc::UnboundedSender<Msg>,
    /// Jobs claimed whose outcome is not known yet.
    running: Arc<AtomicUsize>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Completer {
    /// Once `hard` is cancelled (a hard shutdown), a batch that fails is given up on at
    /// once instead of retried: its jobs stay `running` for a rescuer to put back.
    pub(crate) fn spawn(
        store: Arc<Store>,
        owned: Arc<super::Owned>,
        hard: CancellationToken,
        events: Arc<dyn JobEvents>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let running = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(run(store, rx, running.clone(), owned, hard, events));
        Completer {
            tx,
            running,
            task: Mutex::new(Some(task)),
        }
    }

    /// `n` claimed jobs start: their completions are worth waiting a moment for.
    pub(crate) fn started(&self, n: usize) {
        self.running.fetch_add(n, Ordering::AcqRel);
    }

    /// A job's outcome is known (whatever it is; a completion follows with [`Self::complete`]).
    pub(crate) fn finished(&self) {
        self.running.fetch_sub(1, Ordering::AcqRel);
    }

    /// Queues a completion; it is written with the next batch, and then the job's held permit
    /// is released and `ended` told to the runtime's events (unless the write was fenced off).
    pub(crate) fn complete(&self, fence: JobFence, held: Slot, ended: AttemptEnded) {
        let _ = self.tx.send(Msg::Complete(fence, held, ended));
    }

    /// Waits until every completion queued so far is written.
    pub(crate) async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
        let _ = self.task.lock().await;
    }
}

async fn run(
    store: Arc<Store>,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    running: Arc<AtomicUsize>,
    owned: Arc<super::Owned>,
    hard: CancellationToken,
    events: Arc<dyn JobEvents>,
) {
    let mut batch: Vec<JobFence> = Vec::new();
    let mut ended: Vec<AttemptEnded> = Vec::new();
    let mut slots: Vec<Slot> = Vec::new();
    let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        let deadline = tokio::time::Instant::now() + COALESCE;
        loop {
            let mut flush = false;
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Complete(f, slot, e) => {
                        batch.push(f);
                        slots.push(slot);
                        ended.push(e);
                    }
                    Msg::Flush(tx) => {
                        flushes.push(tx);
                        flush = true;
                    }
                }
                if batch.len() >= MAX_BATCH {
                    break;
                }
                next = rx.try_recv().ok();
            }
            // Jobs claimed together tend to finish together: while some are still running,
            // wait a moment for their completions to join this batch, rather than writing one
            // now and the rest a whole write later.
            if flush || batch.len() >= MAX_BATCH || running.load(Ordering::Acquire) == 0 {
                break;
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(msg)) => next = Some(msg),
                Ok(None) | Err(_) => break,
            }
        }
        if !batch.is_empty() {
            let fences = std::mem::take(&mut batch);
            let written: Vec<(i64, i32)> = fences.iter().map(|f| (f.id, f.attempt)).collect();
            let changed = write(&store, fences, &hard).await;
            for (e, changed) in ended.drain(..).zip(changed) {
                if changed {
                    super::executor::tell(events.as_ref(), &e);
                }
            }
            // Written, fenced off or given up on: no longer this worker's to hold. A job whose
            // completion was given up on is still `running` here, and the reconcile puts it
            // back (at-least-once: it runs again).
            owned.remove_all(&written);
        }
        // Written (or given up on): the held permits are free for new claims.
        Slot::release_all(std::mem::take(&mut slots));
        for f in flushes.drain(..) {
            let _ = f.send(());
        }
    }
}

/// Writes one batch, retrying while the database is unreachable: a completion that is never
/// written leaves its job to be rescued and run again, which at-least-once allows but which
/// costs a second run. A hard shutdown stops the retries: it must not wait out an outage.
/// Answers, per fence, whether its completion was written (`false` when fenced off or given up).
async fn write(store: &Store, fences: Vec<JobFence>, hard: &CancellationToken) -> Vec<bool> {
    let mut delay = Duration::from_millis(50);
    for attempt in 1.. {
        match store.job_complete_many(fences.clone()).await {
            Ok(changed) => {
                let stale = changed.iter().filter(|c| !**c).count();
                if stale > 0 {
                    debug!(
                        stale,
                        "completions fenced off: those jobs were rescued or cancelled meanwhile"
                    );
                }
                return changed;
            }
            // Only errors that may pass are worth retrying; a refusal is given up at once.
            Err(e @ (Error::Unavailable(_) | Error::Database(_) | Error::Closed))
                if attempt < 40 && !hard.is_cancelled() =>
            {
                if attempt == 1 {
                    warn!(error = %e, jobs = fences.len(), "recording completions failed; retrying");
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = hard.cancelled() => {}
                }
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                warn!(error = %e, jobs = fences.len(), "giving up on recording completions; this worker's reconcile puts the jobs back to run again");
                return vec![false; fences.len()];
            }
        }
    }
    unreachable!("the loop returns")
}
