//! Telling a caller that a write of its task has begun: a web request's timeout may cut a
//! request short only until then. Cut after a write was sent, the write still lands (a
//! PostgreSQL statement runs to its end whoever waits for it), and the client, told the
//! request failed, sends it again: the job is inserted twice (review of 6 Dec).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

tokio::task_local! {
    static WRITES: Arc<AtomicBool>;
}

/// Runs `work`; `begun` is set once a write of the store (or of an application's own store
/// that calls [`write_begins`]) starts within it.
pub async fn watch_writes<F: Future>(begun: Arc<AtomicBool>, work: F) -> F::Output {
    WRITES.scope(begun, work).await
}

/// Marks that a write begins, for the [`watch_writes`] around this task, if any.
pub fn write_begins() {
    let _ = WRITES.try_with(|begun| begun.store(true, Ordering::SeqCst));
}

/// Spawns `work` as a task of its own, inside the [`watch_writes`] around the caller, if any:
/// it runs to its end even if the caller is dropped (a web request whose client went away),
/// and its writes still tell the caller's watch that they have begun.
pub fn spawn_watched<F>(work: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match WRITES.try_with(Arc::clone) {
        Ok(begun) => tokio::spawn(watch_writes(begun, work)),
        Err(_) => tokio::spawn(work),
    }
}
