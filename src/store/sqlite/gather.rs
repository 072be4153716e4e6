//! Small inserts of this process written as one (issue 14's single inserts): the writer's
//! group commit already gives concurrent writes one transaction, but each write still paid
//! its own savepoint, its own one-row statement and its own answer on the writer thread.
//! Inserts that wait for nothing and hold no unique key are gathered instead: the first one
//! queues a single writer op, those that come before that op runs join it, and it inserts
//! all their jobs with the multi-row batch insert (the clock read once per statement), as
//! PostgreSQL's group insert does (`postgres/group.rs`). Those that come after it was taken
//! start the next one, which the writer takes into its next transaction. An op takes the
//! requests waiting for it (each caller waits for its answer; at most 100 jobs each) up to
//! one statement's worth of jobs ([`INSERT_ROWS`]), and queues the rest as the next op: a
//! thousand callers at once make several short transactions, between which the writer runs
//! what else was queued, not one long one.
//!
//! Each caller keeps its own outcome. Should the joined insert fail (a value SQLite refuses,
//! a full disk), it is rolled back to its savepoint and each caller's jobs are inserted again
//! under a savepoint of their own, so the one at fault gets its error and the others their
//! jobs. Answers are sent from the writer thread once the transaction has ended, like every
//! write's: a caller that stops waiting changes nothing for the others.

use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::writer::{Op, Reply, Sender, Writer};
use super::{insert_jobs, map_err, INSERT_ROWS};
use crate::error::{Error, Result};
use crate::store::{InsertResult, JobInsertParams};

/// Most jobs one request may hold to be gathered; a larger batch is written on its own.
pub const GATHER_REQUEST_MAX: usize = 100;

/// One caller's jobs and where their answer goes.
struct Request {
    jobs: Vec<JobInsertParams>,
    reply: oneshot::Sender<Result<Vec<InsertResult>>>,
}

#[derive(Default)]
struct Pending {
    requests: Vec<Request>,
    /// Whether an op that will take `requests` is queued at the writer.
    queued: bool,
}

/// The requests waiting for the writer op that will insert them.
#[derive(Default)]
pub(super) struct Gather {
    pending: Arc<Mutex<Pending>>,
    /// How many requests each op took, in order (for tests to see how they were gathered).
    #[cfg(test)]
    taken: Arc<Mutex<Vec<usize>>>,
}

impl Gather {
    /// Whether these jobs may be gathered (see the module docs).
    pub(super) fn joins(jobs: &[JobInsertParams]) -> bool {
        !jobs.is_empty()
            && jobs.len() <= GATHER_REQUEST_MAX
            && jobs.iter().all(|j| !j.waits() && j.unique_key.is_none())
    }

    /// Inserts `jobs` with whatever else is gathered when the writer takes them; answers once
    /// that transaction has committed.
    pub(super) async fn insert(
        &self,
        writer: &Writer,
        jobs: Vec<JobInsertParams>,
    ) -> Result<Vec<InsertResult>> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut pending = lock(&self.pending);
            pending.requests.push(Request { jobs, reply });
            !std::mem::replace(&mut pending.queued, true)
        };
        if start {
            let op = Taker {
                pending: self.pending.clone(),
                writer: writer.sender(),
                #[cfg(test)]
                taken: self.taken.clone(),
            }
            .op();
            if let Err(e) = writer.send(op) {
                closed(&self.pending);
                return Err(e);
            }
        }
        answer.await.map_err(|_| Error::Closed)?
    }
}

/// Answers every waiting request `Closed`: the writer is gone, nothing will take them.
fn closed(pending: &Mutex<Pending>) {
    let mut pending = lock(pending);
    pending.queued = false;
    for request in pending.requests.drain(..) {
        let _ = request.reply.send(Err(Error::Closed));
    }
}

/// What an op needs to take requests, and to queue the next op for those it leaves.
#[derive(Clone)]
struct Taker {
    pending: Arc<Mutex<Pending>>,
    writer: Sender,
    #[cfg(test)]
    taken: Arc<Mutex<Vec<usize>>>,
}

impl Taker {
    /// The writer op that takes the requests gathered by the time it runs, from the first, up
    /// to [`INSERT_ROWS`] jobs (always one request at least); should any be left, it queues
    /// the next op for them before it writes.
    fn op(self) -> Op {
        let pending = Unrun(Some(self.pending.clone()));
        Box::new(move |conn| {
            let mut pending = pending;
            let shared = pending.0.take().expect("an op runs once");
            let conn = match conn {
                Ok(conn) => conn,
                Err(e) => {
                    // Every caller waiting, not a statement's worth: the next op's transaction
                    // would wait out the same deadline before failing too.
                    let requests = {
                        let mut waiting = lock(&shared);
                        waiting.queued = false;
                        std::mem::take(&mut waiting.requests)
                    };
                    #[cfg(test)]
                    self.taken.lock().unwrap().push(requests.len());
                    for request in requests {
                        let _ = request.reply.send(Err(Error::Unavailable(e.to_string())));
                    }
                    return (false, Box::new(|_| {}));
                }
            };
            let requests = {
                let mut waiting = lock(&shared);
                // Requests whose callers stopped waiting are not run (see `writer::op`).
                waiting.requests.retain(|r| !r.reply.is_closed());
                if waiting.requests.is_empty() {
                    waiting.queued = false;
                    return (true, Box::new(|_| {}));
                }
                let mut jobs = 0;
                let take = waiting
                    .requests
                    .iter()
                    .position(|r| {
                        jobs += r.jobs.len();
                        jobs > INSERT_ROWS
                    })
                    .unwrap_or(waiting.requests.len())
                    .max(1);
                let requests: Vec<Request> = waiting.requests.drain(..take).collect();
                let left = !waiting.requests.is_empty();
                waiting.queued = left;
                drop(waiting);
                if left && self.writer.send(self.clone().op()).is_err() {
                    closed(&shared);
                }
                requests
            };
            #[cfg(test)]
            self.taken.lock().unwrap().push(requests.len());
            // Every request's jobs in one list, moved, not copied: request i's are
            // `all[ends[i - 1]..ends[i]]`.
            let mut all = Vec::new();
            let mut ends = Vec::with_capacity(requests.len());
            let replies: Vec<_> = requests
                .into_iter()
                .map(|request| {
                    all.extend(request.jobs);
                    ends.push(all.len());
                    request.reply
                })
                .collect();
            // A panic must not end the writer thread: it fails this op's callers, whose
            // writes are rolled back like those of any failed write.
            let (ok, results) =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write(conn, &all, &ends)))
                    .unwrap_or_else(|_| {
                        (false, fail_all(ends.len(), "the gathered insert panicked"))
                    });
            (ok, answer(replies, results))
        })
    }
}

/// The requests an op will take, until it runs. Dropped unrun (the writer thread ended with
/// the op still queued), it answers them `Closed`, as a plain write's dropped op does, and
/// lets the next caller queue an op again (which then finds the writer gone).
struct Unrun(Option<Arc<Mutex<Pending>>>);

impl Drop for Unrun {
    fn drop(&mut self) {
        if let Some(pending) = self.0.take() {
            let mut pending = lock(&pending);
            pending.queued = false;
            for request in pending.requests.drain(..) {
                let _ = request.reply.send(Err(Error::Closed));
            }
        }
    }
}

/// The reply that answers each request once the transaction has ended.
fn answer(
    replies: Vec<oneshot::Sender<Result<Vec<InsertResult>>>>,
    results: Vec<Result<Vec<InsertResult>>>,
) -> Reply {
    Box::new(move |commit_error| {
        for (reply, result) in replies.into_iter().zip(results) {
            let result = match commit_error {
                Some(e) if result.is_ok() => Err(Error::Database(format!("commit failed: {e}"))),
                _ => result,
            };
            let _ = reply.send(result);
        }
    })
}

/// The same error for each of `requests`.
fn fail_all(requests: usize, why: &str) -> Vec<Result<Vec<InsertResult>>> {
    (0..requests)
        .map(|_| Err(Error::Database(why.to_string())))
        .collect()
}

/// Inserts `all` jobs, joined; should that fail, each request's (ending at `ends`) under a
/// savepoint of its own. Returns whether the op's writes may stay (false: the writer undoes
/// them all) and each request's rows or error (an error alone is that request's: its writes
/// were undone).
fn write(
    conn: &Connection,
    all: &[JobInsertParams],
    ends: &[usize],
) -> (bool, Vec<Result<Vec<InsertResult>>>) {
    if ends.len() == 1 {
        // The writer's own savepoint undoes a failed insert.
        let result = insert_jobs(conn, all);
        return (result.is_ok(), vec![result]);
    }
    let ranges = || {
        ends.iter()
            .scan(0, |start, &end| Some(std::mem::replace(start, end)..end))
    };
    match savepoint(conn, || insert_jobs(conn, all)) {
        Ok(Ok(rows)) => {
            // In input order: each request takes as many rows as it sent jobs.
            let mut rows = rows.into_iter();
            let out = ranges()
                .map(|jobs| Ok(rows.by_ref().take(jobs.len()).collect()))
                .collect();
            return (true, out);
        }
        Ok(Err(_)) => {}
        Err(why) => return (false, fail_all(ends.len(), &why)),
    }
    let mut out = Vec::with_capacity(ends.len());
    for jobs in ranges() {
        match savepoint(conn, || insert_jobs(conn, &all[jobs])) {
            Ok(result) => out.push(result),
            Err(why) => return (false, fail_all(ends.len(), &why)),
        }
    }
    (true, out)
}

/// Runs `f` under a savepoint, undone when `f` fails. The outer error: a savepoint statement
/// failed, so what `f` wrote can no longer be told apart from the transaction's.
fn savepoint<T>(
    conn: &Connection,
    f: impl FnOnce() -> Result<T>,
) -> std::result::Result<Result<T>, String> {
    let control = |sql: &str| {
        conn.prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map(drop)
            .map_err(|e| format!("{sql} failed: {}", map_err(e)))
    };
    control("SAVEPOINT gathered")?;
    let result = f();
    if result.is_err() {
        control("ROLLBACK TO gathered")?;
    }
    control("RELEASE gathered")?;
    Ok(result)
}

fn lock(pending: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    pending.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rusqlite::Connection;

    use super::super::writer::{Writer, FAIL_CONTROL};
    use super::Gather;
    use crate::error::Error;
    use crate::store::{InsertResult, JobInsertParams};

    /// A writer over a migrated file of its own.
    async fn writer(dir: &tempfile::TempDir) -> Arc<Writer> {
        let path = dir.path().join("gather.db");
        drop(
            crate::store::open(&format!("sqlite://{}", path.display()))
                .await
                .unwrap(),
        );
        let conn = Connection::open(&path).unwrap();
        super::super::ensure_clock(&conn).unwrap();
        Arc::new(Writer::start(conn))
    }

    fn job(task: usize, j: usize) -> JobInsertParams {
        JobInsertParams::new(
            "noop",
            serde_json::json!({"task": task, "j": j}),
            Default::default(),
        )
        .unwrap()
    }

    /// 100 callers of 100 jobs each: three statements' worth and some.
    fn crowd() -> Vec<Vec<JobInsertParams>> {
        (0..100)
            .map(|t| (0..100).map(|j| job(t, j)).collect())
            .collect()
    }

    /// Holds the writer inside a group of its own until the returned sender is dropped.
    async fn hold(writer: &Arc<Writer>) -> std::sync::mpsc::Sender<()> {
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let writer = writer.clone();
        tokio::spawn(async move {
            writer
                .run(move |_c: &Connection| {
                    let _ = started_tx.send(());
                    let _ = release_rx.recv();
                    Ok(())
                })
                .await
        });
        started_rx.await.unwrap();
        release_tx
    }

    /// Sends `requests` (task number and its jobs) to `gather` while the writer is held, and
    /// waits until every one is gathered; returns their answers once the writer is let go,
    /// after `before_release` has queued whatever else the test wants in the same group.
    async fn gathered(
        writer: &Arc<Writer>,
        gather: &Arc<Gather>,
        requests: Vec<Vec<JobInsertParams>>,
        before_release: impl FnOnce(),
    ) -> Vec<crate::error::Result<Vec<InsertResult>>> {
        let release = hold(writer).await;
        let mut tasks = Vec::new();
        // One at a time, so that they are gathered in the order given.
        for (i, jobs) in requests.into_iter().enumerate() {
            let (w, g) = (writer.clone(), gather.clone());
            tasks.push(tokio::spawn(async move { g.insert(&w, jobs).await }));
            while super::lock(&gather.pending).requests.len() <= i {
                tokio::task::yield_now().await;
            }
        }
        before_release();
        drop(release);
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }

    /// Requests that come while the writer is busy are written by one op, one joined insert:
    /// each caller gets its own jobs, in its order, and the ids follow the callers' order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn inserts_gathered_while_the_writer_is_busy_are_written_together() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        let gather = Arc::new(Gather::default());
        let requests = (0..50)
            .map(|t| (0..1 + t % 3).map(|j| job(t, j)).collect())
            .collect();
        let answers = gathered(&writer, &gather, requests, || {}).await;
        let mut last = 0;
        for (task, answer) in answers.into_iter().enumerate() {
            let rows = answer.unwrap();
            assert_eq!(rows.len(), 1 + task % 3);
            for (j, r) in rows.iter().enumerate() {
                assert!(r.inserted);
                assert_eq!(r.job.args, serde_json::json!({"task": task, "j": j}));
                assert!(r.job.id > last, "ids follow the callers' order");
                last = r.job.id;
            }
        }
        assert_eq!(
            *gather.taken.lock().unwrap(),
            vec![50],
            "one op took them all"
        );
        assert!(!super::lock(&gather.pending).queued);
    }

    /// A request SQLite refuses (priority 9 breaks the table's CHECK) fails alone: the joined
    /// insert is undone and each request is inserted again on its own, so the others get
    /// their jobs and nothing of the refused one is written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_request_among_gathered_ones_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        let gather = Arc::new(Gather::default());
        let requests = (0..20)
            .map(|t| {
                let mut jobs = vec![job(t, 0), job(t, 1)];
                if t == 7 {
                    jobs[1].priority = 9;
                }
                jobs
            })
            .collect();
        let answers = gathered(&writer, &gather, requests, || {}).await;
        for (task, answer) in answers.into_iter().enumerate() {
            match (task, answer) {
                (7, Err(Error::Invalid { .. })) => {}
                (7, other) => panic!("the refused request answered {other:?}"),
                (_, Ok(rows)) => assert_eq!(rows.len(), 2),
                (_, Err(e)) => panic!("request {task} failed: {e}"),
            }
        }
        let stored: Vec<i64> = writer
            .run(|c| {
                let mut stmt = c.prepare("SELECT args ->> 'task' FROM porter_jobs ORDER BY id")?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            })
            .await
            .unwrap();
        let expected: Vec<i64> = (0..20).filter(|t| *t != 7).flat_map(|t| [t, t]).collect();
        assert_eq!(stored, expected);
        assert_eq!(
            *gather.taken.lock().unwrap(),
            vec![20],
            "one op took them all"
        );
    }

    /// Should the writer thread end (a panic outside any op's own catch_unwind, here an op
    /// that panics as it runs), the ops still queued are dropped unrun: a plain write queued
    /// there is answered `Closed` (its reply sender goes with it), and so must a gathered one
    /// be, and every gathered insert after it, instead of waiting forever for an op that
    /// will never run (`queued` stays true, so no later caller sends another).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn gathered_inserts_are_answered_when_the_writer_thread_dies() {
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        let gather = Arc::new(Gather::default());
        let release = hold(&writer).await;
        // Next group: an op that panics, then a gathered insert, then a plain write.
        writer
            .send(Box::new(|_| panic!("injected: the writer thread dies")))
            .unwrap();
        let (w, g) = (writer.clone(), gather.clone());
        let gathered = tokio::spawn(async move { g.insert(&w, vec![job(0, 0)]).await });
        while super::lock(&gather.pending).requests.is_empty() {
            tokio::task::yield_now().await;
        }
        let w = writer.clone();
        let plain = tokio::spawn(async move { w.run(|_| Ok(())).await });
        drop(release);
        let plain = tokio::time::timeout(Duration::from_secs(10), plain)
            .await
            .expect("the plain write is answered")
            .unwrap();
        assert!(matches!(plain, Err(Error::Closed)), "{plain:?}");
        let gathered = tokio::time::timeout(Duration::from_secs(10), gathered)
            .await
            .expect("the gathered insert is answered, not left waiting forever")
            .unwrap();
        assert!(matches!(gathered, Err(Error::Closed)), "{gathered:?}");
        let later = tokio::time::timeout(
            Duration::from_secs(10),
            gather.insert(&writer, vec![job(1, 0)]),
        )
        .await
        .expect("a later gathered insert is answered too");
        assert!(matches!(later, Err(Error::Closed)), "{later:?}");
    }

    /// A gathered insert writes and answers each field as the plain insert (one op of its
    /// own) does: the rows stored and returned differ only in id and times read at insert.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn gathered_rows_match_the_plain_insert_field_by_field() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        let gather = Arc::new(Gather::default());
        let at = chrono::Utc::now() + chrono::Duration::hours(3);
        let varied = move |t: usize| -> Vec<JobInsertParams> {
            let opts = move |i: usize| crate::job::InsertOpts {
                queue: Some(format!("q{t}{i}")),
                priority: Some(1 + (i % 4) as i16),
                max_attempts: Some(3 + i as i32),
                scheduled_at: (i == 1).then_some(at),
                schedule_in: (i == 2).then_some(std::time::Duration::from_secs(90)),
                metadata: Some(serde_json::json!({"t": t, "i": i, "nested": {"x": [1, 2]}})),
                concurrency_key: (i != 0).then(|| format!("ck{i}")),
                ..Default::default()
            };
            (0..4)
                .map(|i| {
                    JobInsertParams::new(
                        &format!("kind{i}"),
                        serde_json::json!({"t": t, "i": i}),
                        opts(i),
                    )
                    .unwrap()
                })
                .collect()
        };
        let answers = gathered(&writer, &gather, vec![varied(0), varied(1)], || {}).await;
        let plain = writer
            .run(move |c| super::insert_jobs(c, &varied(0)))
            .await
            .unwrap();
        let stored = |id: i64| {
            writer.run(move |c| {
                Ok(c.query_row(
                    include_str!("sql/job_get.sql"),
                    [id],
                    super::super::job_from_row,
                )?)
            })
        };
        let normal = |mut r: crate::job::JobRow, plain_at: bool| {
            r.id = 0;
            r.created_at = chrono::DateTime::<chrono::Utc>::MIN_UTC;
            if plain_at {
                r.scheduled_at = chrono::DateTime::<chrono::Utc>::MIN_UTC;
            }
            r
        };
        for (t, answer) in answers.into_iter().enumerate() {
            let rows = answer.unwrap();
            assert_eq!(rows.len(), 4);
            for (i, r) in rows.into_iter().enumerate() {
                assert!(r.inserted);
                let db = stored(r.job.id).await.unwrap();
                assert_eq!(r.job, db, "request {t} job {i}: answered as stored");
                if t == 0 {
                    let p = stored(plain[i].job.id).await.unwrap();
                    assert_eq!(plain[i].job, p);
                    assert_eq!(normal(db, i != 1), normal(p, i != 1), "job {i}");
                }
            }
        }
    }

    /// Many callers, enough jobs for several statements (cut at 3,276 rows), one refused:
    /// each caller still gets its own jobs, in its order, ids ascending with the callers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_gathered_insert_keeps_each_callers_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        let gather = Arc::new(Gather::default());
        for refused in [None, Some(123)] {
            let requests = (0..400)
                .map(|t| {
                    let mut jobs: Vec<_> = (0..1 + t % 100).map(|j| job(t, j)).collect();
                    if Some(t) == refused {
                        jobs.last_mut().unwrap().priority = 9;
                    }
                    jobs
                })
                .collect();
            let answers = gathered(&writer, &gather, requests, || {}).await;
            let mut last = 0;
            for (t, answer) in answers.into_iter().enumerate() {
                if Some(t) == refused {
                    assert!(matches!(answer, Err(Error::Invalid { .. })), "{answer:?}");
                    continue;
                }
                let rows = answer.unwrap();
                assert_eq!(rows.len(), 1 + t % 100);
                for (j, r) in rows.iter().enumerate() {
                    assert_eq!(r.job.args, serde_json::json!({"task": t, "j": j}));
                    assert!(r.job.id > last);
                    last = r.job.id;
                }
            }
        }
        let stored: i64 = writer
            .run(|c| Ok(c.query_row("SELECT count(*) FROM porter_jobs", [], |r| r.get(0))?))
            .await
            .unwrap();
        let per_round: i64 = (0..400).map(|t| 1 + t % 100).sum();
        assert_eq!(stored, 2 * per_round - (1 + 123 % 100));
    }

    /// A crowd of callers at once is written in ops of at most one statement's worth of jobs
    /// each, in the callers' order, and what else was queued meanwhile runs between them: one
    /// op used to take them all (2,000 callers of 100 jobs: one transaction of 200,000 rows,
    /// and a heartbeat waited 1.55 s for it in a debug build).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crowd_of_gathered_callers_is_written_a_statement_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        let gather = Arc::new(Gather::default());
        let requests = crowd();
        let answers = gathered(&writer, &gather, requests, || {}).await;
        let mut last = 0;
        for (t, answer) in answers.into_iter().enumerate() {
            let rows = answer.unwrap();
            assert_eq!(rows.len(), 100);
            for (j, r) in rows.iter().enumerate() {
                assert_eq!(r.job.args, serde_json::json!({"task": t, "j": j}));
                assert!(r.job.id > last, "ids follow the callers' order");
                last = r.job.id;
            }
        }
        let per_op = super::INSERT_ROWS / 100;
        assert_eq!(
            *gather.taken.lock().unwrap(),
            vec![per_op, per_op, per_op, 100 - 3 * per_op],
            "ops of at most {} jobs",
            super::INSERT_ROWS
        );
        assert!(!super::lock(&gather.pending).queued);

        // A write queued while the crowd waits runs before the crowd's second op.
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let release = hold(&writer).await;
        let mut tasks = Vec::new();
        for t in 0..2 * per_op {
            let (w, g, order) = (writer.clone(), gather.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let rows = g.insert(&w, (0..100).map(|j| job(t, j)).collect()).await;
                order.lock().unwrap().push(format!("caller {t}"));
                rows.unwrap();
            }));
            while super::lock(&gather.pending).requests.len() <= t {
                tokio::task::yield_now().await;
            }
        }
        let mut other = {
            let (w, order) = (writer.clone(), order.clone());
            Box::pin(async move {
                w.run(|_c: &Connection| Ok(())).await.unwrap();
                order.lock().unwrap().push("other".to_string());
            })
        };
        // Polled once, the other write is queued (behind the crowd's first op) before the
        // writer goes on; then it waits for its answer in a task of its own.
        assert!(futures::poll!(&mut other).is_pending());
        let other = tokio::spawn(other);
        drop(release);
        for t in tasks {
            t.await.unwrap();
        }
        other.await.unwrap();
        let order = order.lock().unwrap();
        let other_at = order.iter().position(|o| o == "other").unwrap();
        let last_caller = order
            .iter()
            .position(|o| o == &format!("caller {}", 2 * per_op - 1));
        assert!(other_at < last_caller.unwrap(), "{order:?}");
    }

    /// A transaction that cannot begin (another process holding the lock past the writer's
    /// deadline; here an injected failure of BEGIN) fails every caller waiting, not one
    /// statement's worth: each further op would have waited out the deadline again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_transaction_that_cannot_begin_fails_the_whole_crowd_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        let gather = Arc::new(Gather::default());
        let requests = crowd();
        // Set on the writer thread by a write of its own, behind the crowd's first op.
        let fail_next_begin = || {
            writer
                .send(Box::new(|_| {
                    FAIL_CONTROL.with(|f| f.set(Some("BEGIN IMMEDIATE")));
                    (true, Box::new(|_| {}))
                }))
                .unwrap()
        };
        // The crowd's first op runs in the held group's successor, with the write that makes
        // the next BEGIN fail behind it; that next BEGIN is its follow-up's.
        let answers = gathered(&writer, &gather, requests, fail_next_begin).await;
        let per_op = super::INSERT_ROWS / 100;
        let written: Vec<bool> = answers.iter().map(|a| a.is_ok()).collect();
        assert_eq!(written, (0..100).map(|t| t < per_op).collect::<Vec<_>>());
        for a in &answers[per_op..] {
            assert!(matches!(a, Err(Error::Unavailable(_))), "{a:?}");
        }
        assert_eq!(*gather.taken.lock().unwrap(), vec![per_op, 100 - per_op]);
        assert!(!super::lock(&gather.pending).queued);
        let stored: i64 = writer
            .run(|c| Ok(c.query_row("SELECT count(*) FROM porter_jobs", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(stored, 100 * per_op as i64);
    }

    /// A full database (max_page_count) refuses the joined insert; each caller runs again on
    /// its own and some fit: every caller answered Ok has its rows stored after the commit,
    /// and no caller answered Err has any.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_database_answers_each_gathered_caller_truthfully() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        let gather = Arc::new(Gather::default());
        writer
            .run(|c| {
                let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
                c.execute_batch(&format!("PRAGMA max_page_count = {}", pages + 40))?;
                Ok(())
            })
            .await
            .unwrap();
        let big = "x".repeat(8_000);
        let requests = (0..30)
            .map(|t| {
                (0..3)
                    .map(|j| {
                        JobInsertParams::new(
                            "noop",
                            serde_json::json!({"task": t, "j": j, "pad": big}),
                            Default::default(),
                        )
                        .unwrap()
                    })
                    .collect()
            })
            .collect();
        let answers = gathered(&writer, &gather, requests, || {}).await;
        let stored: Vec<(i64, i64)> = writer
            .run(|c| {
                let mut stmt =
                    c.prepare("SELECT id, args ->> 'task' FROM porter_jobs ORDER BY id")?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            })
            .await
            .unwrap();
        let (mut ok, mut err) = (0, 0);
        for (t, answer) in answers.into_iter().enumerate() {
            let mine: Vec<i64> = stored
                .iter()
                .filter(|(_, task)| *task == t as i64)
                .map(|(id, _)| *id)
                .collect();
            match answer {
                Ok(rows) => {
                    ok += 1;
                    let ids: Vec<i64> = rows.iter().map(|r| r.job.id).collect();
                    assert_eq!(ids, mine, "caller {t} answered Ok");
                }
                Err(e) => {
                    err += 1;
                    assert!(
                        mine.is_empty(),
                        "caller {t} answered {e} but has rows {mine:?}"
                    );
                }
            }
        }
        eprintln!("ok {ok}, err {err}, stored {}", stored.len());
        assert!(err > 0, "the database filled up");
    }

    /// A COMMIT that fails answers every gathered caller with its error, and nothing of
    /// theirs is written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_commit_fails_every_gathered_request() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        let gather = Arc::new(Gather::default());
        let requests = (0..10).map(|t| vec![job(t, 0)]).collect();
        // An op queued behind the gathered one, so in the same group, makes its COMMIT fail.
        let answers = gathered(&writer, &gather, requests, || {
            writer
                .send(Box::new(|_| {
                    FAIL_CONTROL.with(|f| f.set(Some("COMMIT")));
                    (true, Box::new(|_| {}))
                }))
                .unwrap();
        })
        .await;
        for answer in answers {
            match answer {
                Err(Error::Database(e)) => assert!(e.contains("commit failed"), "{e}"),
                other => panic!("a gathered request answered {other:?}"),
            }
        }
        let count: i64 = writer
            .run(|c| Ok(c.query_row("SELECT count(*) FROM porter_jobs", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(count, 0);
    }
}
