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
