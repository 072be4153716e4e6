//! Telling a caller that a write of its task has begun: a web request's timeout may cut a
//! request short only until then. Cut after a write was sent, the write still lands (a
//! PostgreSQL statement runs to its end whoever waits for it), and the client, told the
//! request failed, sends it again: the job is inserted twice (review of 6 Dec).
//!
//! The request and its timeout settle it once, on one value ([`WriteWatch`]): either a write
//! begins first, and the request is answered once it has ended, or the timeout comes first,
//! and no write of the request begins after it. The second matters to work that runs in a
//! task of its own ([`spawn_watched`]), which goes on after the timeout has answered: its
//! writes are refused from then on (until 7 Dec a bulk action answered 408 went on to write
//! every batch).

use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

tokio::task_local! {
    static WRITES: Arc<WriteWatch>;
}

const IDLE: u8 = 0;
const WRITING: u8 = 1;
const TIMED_OUT: u8 = 2;

/// Whether a request's writes have begun, or its timeout has answered it first.
#[derive(Debug, Default)]
pub struct WriteWatch(AtomicU8);

impl WriteWatch {
    /// A watch on which nothing has happened yet.
    pub fn new() -> Arc<WriteWatch> {
        Arc::new(WriteWatch(AtomicU8::new(IDLE)))
    }

    /// Takes the request for its timeout unless a write has begun: `true` when the timeout
    /// answers it, and then no write of it begins from now on.
    pub fn time_out(&self) -> bool {
        matches!(
            self.0
                .compare_exchange(IDLE, TIMED_OUT, Ordering::SeqCst, Ordering::SeqCst),
            Ok(_) | Err(TIMED_OUT)
        )
    }
}

/// Runs `work`; `watch` learns once a write of the store (or of an application's own store
/// that calls [`write_begins`]) starts within it.
pub async fn watch_writes<F: Future>(watch: Arc<WriteWatch>, work: F) -> F::Output {
    WRITES.scope(watch, work).await
}

/// Marks that a write begins, for the [`watch_writes`] around this task, if any. `false` when
/// that request's timeout has answered it already: the write must not begin (the store's
/// writes are then refused, see [`crate::Store`]).
pub fn write_begins() -> bool {
    WRITES
        .try_with(|watch| {
            matches!(
                watch
                    .0
                    .compare_exchange(IDLE, WRITING, Ordering::SeqCst, Ordering::SeqCst),
                Ok(_) | Err(WRITING)
            )
        })
        .unwrap_or(true)
}

/// Spawns `work` as a task of its own, inside the [`watch_writes`] around the caller, if any:
/// it runs to its end even if the caller is dropped (a web request whose client went away),
/// and its writes still settle the caller's watch (a write refused once the timeout has
/// answered).
pub fn spawn_watched<F>(work: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match WRITES.try_with(Arc::clone) {
        Ok(watch) => tokio::spawn(watch_writes(watch, work)),
        Err(_) => tokio::spawn(work),
    }
}
