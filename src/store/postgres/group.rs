//! Group commit for small inserts (issue 14): concurrent inserts of this process share one
//! transaction, one statement, one NOTIFY and one flush, as the SQLite writer's group commit
//! does. Without it each insert pays its own BEGIN, INSERT, NOTIFY, COMMIT and disk flush.
//!
//! An inserter task takes the requests that queued while the groups before them were in
//! flight (at most [`GROUPS_IN_FLIGHT`] at once, each on its own connection), up to
//! [`GROUP_ROWS`] jobs, and inserts them with the batch insert: results come back per row, in
//! input order, and each caller gets its own slice. No request waits for company: one that
//! finds a group free starts at once, and when nothing is queued either, in the caller's own
//! task (a group of one, without the hops to the inserter task and back). A group that fits
//! one statement (nearly all) is that one statement with its NOTIFY, sent outside a
//! transaction ([`insert_announced`]): one round trip where BEGIN, INSERT, NOTIFY and COMMIT
//! took four; a larger one keeps its transaction ([`insert_jobs_tx`]).
//!
//! Each caller keeps its own outcome. A statement that fails (a value the database refuses,
//! say) fails before anything commits; the group is rolled back and each request is then run
//! in a transaction of its own, so the one at fault gets its error and the others their jobs.
//! A COMMIT that fails answers every caller with its error, as their own COMMIT would have
//! (whether it took effect is unknown, so nothing is retried); so does a one-statement group
//! whose connection fails before its answer (it may have committed).
//!
//! Only inserts that wait for nothing and hold no unique key join a group: an insert whose
//! unique key another open transaction holds blocks until that transaction ends, and it must
//! not hold up the others with it; jobs of a sequence or with parents take locks one by one.
//! Those, large batches, and inserts inside a caller's own transaction ([`super::job_insert_tx`])
//! keep their own transaction.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::{fits_one_statement, insert_announced, insert_jobs_tx, pool_err};
use crate::error::{Error, Result};
use crate::store::{InsertResult, JobInsertParams};

/// Groups in flight at once, each on a connection of the pool (which also serves claims,
/// completions and the LISTEN task, so this stays well below its default of 10). While they
/// are busy, requests queue up and the next group takes them all.
pub const GROUPS_IN_FLIGHT: usize = 3;
/// Most jobs one group inserts.
pub const GROUP_ROWS: usize = 1_000;
/// Most jobs one request may hold to join a group; a larger batch is a group of its own
/// already.
pub const GROUP_REQUEST_MAX: usize = 100;

/// One caller's insert and where its answer goes.
struct Request {
    jobs: Vec<JobInsertParams>,
    reply: oneshot::Sender<Result<Vec<InsertResult>>>,
}

/// The handle callers send their inserts to; the inserter task stops when it is dropped.
pub(super) struct Inserter {
    tx: mpsc::UnboundedSender<Request>,
    pool: PgPool,
    /// Places for groups in flight, shared with the inserter task.
    in_flight: Arc<Semaphore>,
    /// Requests sent to the inserter task and not yet taken into a group.
    queued: Arc<AtomicUsize>,
}

impl Inserter {
    /// Starts the inserter task on `pool`.
    pub(super) fn start(pool: PgPool) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let in_flight = Arc::new(Semaphore::new(GROUPS_IN_FLIGHT));
        let queued = Arc::new(AtomicUsize::new(0));
        tokio::spawn(run(pool.clone(), rx, in_flight.clone(), queued.clone()));
        Inserter {
            tx,
            pool,
            in_flight,
            queued,
        }
    }

    /// Waits until no request is queued and no group is under way (for tests: a request's
    /// group may still be running after a later request was answered). The inserter task
    /// holds one place while it waits for a request.
    #[cfg(test)]
    pub(super) async fn settled(&self) {
        while self.queued.load(Ordering::Acquire) > 0
            || self.in_flight.available_permits() < GROUPS_IN_FLIGHT - 1
        {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Whether these jobs may share a group (see the module docs).
    pub(super) fn joins(jobs: &[JobInsertParams]) -> bool {
        !jobs.is_empty()
            && jobs.len() <= GROUP_REQUEST_MAX
            && jobs.iter().all(|j| !j.waits() && j.unique_key.is_none())
    }

    /// Inserts the jobs in the next group and answers once that group committed.
    pub(super) async fn insert(&self, jobs: Vec<JobInsertParams>) -> Result<Vec<InsertResult>> {
        // Nobody waiting and a place free: a group of this request alone, which the caller's
        // own task runs, saving the hops to the inserter task and back.
        if self.queued.load(Ordering::Acquire) == 0 {
            if let Ok(place) = self.in_flight.clone().try_acquire_owned() {
                let out = insert(&self.pool, jobs).await.map_err(Failed::into_error);
                drop(place);
                return out;
            }
        }
        self.queued.fetch_add(1, Ordering::AcqRel);
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Request { jobs, reply })
            .map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }
}

/// Takes requests into groups while a group may start.
async fn run(
    pool: PgPool,
    mut rx: mpsc::UnboundedReceiver<Request>,
    in_flight: Arc<Semaphore>,
    queued: Arc<AtomicUsize>,
) {
    loop {
        // A free place first: requests that come while every group is busy queue up and go
        // together into the next.
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut rows = first.jobs.len();
        let mut group = vec![first];
        while rows < GROUP_ROWS {
            match rx.try_recv() {
                Ok(request) => {
                    rows += request.jobs.len();
                    group.push(request);
                }
                Err(_) => break,
            }
        }
        queued.fetch_sub(group.len(), Ordering::AcqRel);
        // A request whose caller stopped waiting (a request's timeout, a dropped future) is
        // not sent: it would land after the caller was told, perhaps, that it failed (as the
        // SQLite writer passes such writes over).
        group.retain(|r| !r.reply.is_closed());
        if group.is_empty() {
            continue;
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            run_group(&pool, group).await;
            drop(permit);
        });
    }
}

/// Inserts one group in one transaction and answers each caller.
async fn run_group(pool: &PgPool, group: Vec<Request>) {
    let sizes: Vec<usize> = group.iter().map(|r| r.jobs.len()).collect();
    let (jobs, replies): (Vec<Vec<JobInsertParams>>, Vec<_>) =
        group.into_iter().map(|r| (r.jobs, r.reply)).unzip();
    let all: Vec<JobInsertParams> = jobs.iter().flatten().cloned().collect();
    match insert(pool, all).await {
        Ok(results) => {
            let mut results = results.into_iter();
            for (reply, n) in replies.into_iter().zip(sizes) {
                let _ = reply.send(Ok(results.by_ref().take(n).collect()));
            }
        }
        Err(Failed::Statement(e)) if replies.len() == 1 => {
            let _ = replies.into_iter().next().expect("one").send(Err(e));
        }
        Err(Failed::Statement(e)) if matches!(e, Error::Unavailable(_)) => {
            // Not any one request's doing: each alone would wait for the database again.
            for reply in replies {
                let _ = reply.send(Err(copy(&e)));
            }
        }
        Err(Failed::Statement(_)) => {
            // Nothing committed: each request again, alone, for its own answer.
            for (reply, jobs) in replies.into_iter().zip(jobs) {
                let out = insert(pool, jobs).await.map_err(Failed::into_error);
                let _ = reply.send(out);
            }
        }
        Err(Failed::Commit(e)) => {
            for reply in replies {
                let _ = reply.send(Err(copy(&e)));
            }
        }
    }
}

/// Why a group's transaction did not commit.
enum Failed {
    /// Before COMMIT (a statement, or BEGIN): nothing was written.
    Statement(Error),
    /// At COMMIT: whether it took effect is the database's to tell.
    Commit(Error),
}

impl Failed {
    fn into_error(self) -> Error {
        match self {
            Failed::Statement(e) | Failed::Commit(e) => e,
        }
    }
}

/// The jobs in one transaction (its NOTIFY included): one statement that is its own
/// transaction when they fit in one, else BEGIN, the statements, NOTIFY and COMMIT.
async fn insert(
    pool: &PgPool,
    jobs: Vec<JobInsertParams>,
) -> std::result::Result<Vec<InsertResult>, Failed> {
    if fits_one_statement(&jobs) {
        let mut conn = pool
            .acquire()
            .await
            .map_err(|e| Failed::Statement(pool_err(pool, e)))?;
        return match insert_announced(&mut conn, &jobs).await {
            Ok(out) => Ok(out),
            // Refused by the database, at the statement or at its commit: rolled back.
            Err(e @ sqlx::Error::Database(_)) => Err(Failed::Statement(e.into())),
            // Lost on the way (the connection, say): whether it committed is unknown, as for a
            // COMMIT that fails.
            Err(e) => Err(Failed::Commit(e.into())),
        };
    }
    let mut tx = pool
        .begin()
        .await
        .map_err(|e| Failed::Statement(pool_err(pool, e)))?;
    let out = insert_jobs_tx(&mut tx, jobs)
        .await
        .map_err(Failed::Statement)?;
    tx.commit().await.map_err(|e| Failed::Commit(e.into()))?;
    Ok(out)
}

/// The same error again, for each caller of a group that failed at COMMIT.
fn copy(e: &Error) -> Error {
    match e {
        Error::Unavailable(m) => Error::Unavailable(m.clone()),
        Error::Closed => Error::Closed,
        other => Error::Database(other.to_string()),
    }
}
