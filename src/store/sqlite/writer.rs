//! The one write connection of a process and its group commit.

use std::collections::VecDeque;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::checkpoint::Checkpoints;
use super::{is_busy, map_err, FileGuard, MAX_GROUP};
use crate::error::{Error, Result};

/// Called once the group's transaction has ended: `None` when it committed, else why not.
pub(super) type Reply = Box<dyn FnOnce(Option<&str>) + Send>;

/// The writer's queue of ops.
pub(super) type Sender = mpsc::Sender<Op>;
/// Runs one caller's writes (or, given `Err`, answers the caller that they could not run);
/// returns whether they succeeded and how to answer the caller once the transaction ended.
pub(super) type Op =
    Box<dyn FnOnce(std::result::Result<&Connection, &str>) -> (bool, Reply) + Send>;

/// How long the writer keeps retrying to begin a transaction while other processes hold the
/// lock, past SQLite's own busy_timeout, before it fails the waiting callers.
const BEGIN_DEADLINE: Duration = Duration::from_secs(60);

pub(super) struct Writer {
    tx: mpsc::Sender<Op>,
    /// The priority lane: ops that join the next group ahead of everything queued in `tx`.
    urgent: Arc<Mutex<Vec<Op>>>,
}

impl Writer {
    #[cfg(test)]
    pub(super) fn start(conn: Connection) -> Self {
        Self::start_with(conn, false, None)
    }

    /// Starts the writer; with `wait_for_locks`, another connection's write lock is waited out
    /// however long it lasts (a warning every [`BEGIN_DEADLINE`]) instead of failing the
    /// group's writes at the deadline.
    pub(super) fn start_with(
        conn: Connection,
        wait_for_locks: bool,
        guard: Option<FileGuard>,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<Op>();
        let urgent = Arc::new(Mutex::new(Vec::new()));
        let lane = urgent.clone();
        let open = super::ThreadOpen::count();
        std::thread::Builder::new()
            .name("porter-sqlite-writer".into())
            .spawn(move || {
                let _open = open;
                // `run` ends, and closes the connection, once every sender is gone.
                run(conn, rx, lane, wait_for_locks, guard)
            })
            .expect("spawn the SQLite writer thread");
        Writer { tx, urgent }
    }

    /// Runs `f` in the next group transaction and answers once that transaction committed.
    pub(super) async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (op, reply) = op(f);
        self.tx.send(op).map_err(|_| Error::Closed)?;
        reply.await.map_err(|_| Error::Closed)?
    }

    /// Queues an op of the caller's own making (see `gather.rs`), which answers its callers
    /// itself.
    pub(super) fn send(&self, op: Op) -> Result<()> {
        self.tx.send(op).map_err(|_| Error::Closed)
    }

    /// Where ops are queued, for an op that queues another (see `gather.rs`).
    pub(super) fn sender(&self) -> Sender {
        self.tx.clone()
    }

    /// Like [`Writer::run`], but `f` joins the very next group, ahead of every write queued
    /// before it: for a worker's heartbeat, which must not wait behind a long queue of job
    /// writes (it waits at most for the transaction in progress).
    pub(super) async fn run_urgent<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (op, reply) = op(f);
        self.queue_urgent(op)?;
        reply.await.map_err(|_| Error::Closed)?
    }

    /// Puts `op` in the priority lane and wakes the writer thread.
    fn queue_urgent(&self, op: Op) -> Result<()> {
        self.urgent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(op);
        // Wakes the writer thread if it is idle; the op itself does nothing.
        self.tx
            .send(Box::new(|_| (true, Box::new(|_| {}))))
            .map_err(|_| Error::Closed)
    }
}

/// Wraps a caller's writes as an op, and the receiver of its answer.
fn op<T, F>(f: F) -> (Op, oneshot::Receiver<Result<T>>)
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T> + Send + 'static,
{
    {
        let (reply_tx, reply_rx) = oneshot::channel::<Result<T>>();
        let op: Op = Box::new(move |conn| {
            let conn = match conn {
                Ok(conn) => conn,
                Err(e) => {
                    let _ = reply_tx.send(Err(Error::Unavailable(e.to_string())));
                    return (false, Box::new(|_| {}));
                }
            };
            // The caller stopped waiting (its future was dropped: a request's timeout, a
            // shutdown that gave up on its writes) before the writer reached its writes: it
            // has no answer, and was perhaps told they failed. Run now, they would land after
            // that (a 408 whose insert then ran, and a retry inserting the job again): they
            // are not run.
            if reply_tx.is_closed() {
                return (true, Box::new(|_| {}));
            }
            // A panic in the caller's closure must not end the writer thread (every later
            // write of the process would fail): it becomes this caller's error, and its
            // writes are rolled back like those of any failed closure.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)))
                .unwrap_or_else(|panic| {
                    Err(Error::Database(format!(
                        "the write panicked: {}",
                        panic_message(&*panic)
                    )))
                });
            let ok = result.is_ok();
            let reply: Reply = Box::new(move |commit_error| {
                let result = match commit_error {
                    Some(e) if result.is_ok() => {
                        Err(Error::Database(format!("commit failed: {e}")))
                    }
                    _ => result,
                };
                let _ = reply_tx.send(result);
            });
            (ok, reply)
        });
        (op, reply_rx)
    }
}

/// Runs one of the transaction-control statements, prepared once and kept (they run for
/// every group, several times per group with savepoints).
fn control(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    #[cfg(test)]
    if FAIL_CONTROL.with(|f| f.get() == Some(sql)) {
        FAIL_CONTROL.with(|f| f.set(None));
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
            Some(format!("injected failure of {sql}")),
        ));
    }
    conn.prepare_cached(sql)?.execute([]).map(drop)?;
    #[cfg(test)]
    if sql == "COMMIT" {
        COMMITS.with(|c| c.set(c.get() + 1));
    }
    Ok(())
}

#[cfg(test)]
thread_local! {
    /// Fault injection for tests: the next control statement equal to this fails (set from a
    /// write closure, which runs on the writer thread).
    pub(super) static FAIL_CONTROL: std::cell::Cell<Option<&'static str>> = const { std::cell::Cell::new(None) };
    /// The transactions this writer thread committed, for tests to see how writes were grouped
    /// (read from a write closure, which runs on the writer thread).
    static COMMITS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Begins the group's transaction. The error is a message without the "database
/// unavailable" prefix, which the op adds once when it answers its caller.
fn begin(conn: &Connection, wait_for_locks: bool) -> std::result::Result<(), String> {
    let first = Instant::now();
    let mut started = first;
    #[cfg(not(test))]
    let deadline = BEGIN_DEADLINE;
    #[cfg(test)]
    let deadline = BEGIN_DEADLINE_FOR_TEST
        .with(|d| d.get())
        .unwrap_or(BEGIN_DEADLINE);
    loop {
        match control(conn, "BEGIN IMMEDIATE") {
            Ok(()) => return Ok(()),
            Err(e) if is_busy(&e) && started.elapsed() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) if is_busy(&e) && wait_for_locks => {
                tracing::warn!(
                    waited = ?first.elapsed(),
                    "the SQLite database is locked by another connection (a process stopped inside a write transaction?); still waiting for it"
                );
                started = Instant::now();
            }
            Err(e) => {
                return Err(match map_err(e) {
                    Error::Unavailable(message) => message,
                    other => other.to_string(),
                })
            }
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Runs once on the writer thread while it gathers the next group, after reading the
    /// group's first op from the channel and before the rest (set from a write closure): lets a
    /// test send at that moment.
    static WHILE_GATHERING: std::cell::RefCell<Option<Box<dyn FnOnce()>>> = const { std::cell::RefCell::new(None) };
}

#[cfg(test)]
thread_local! {
    /// A shorter [`BEGIN_DEADLINE`] for tests (set from a write closure, on the writer thread).
    static BEGIN_DEADLINE_FOR_TEST: std::cell::Cell<Option<Duration>> = const { std::cell::Cell::new(None) };
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

fn run(
    conn: Connection,
    rx: mpsc::Receiver<Op>,
    urgent: Arc<Mutex<Vec<Op>>>,
    wait_for_locks: bool,
    guard: Option<FileGuard>,
) {
    let mut checkpoints = Checkpoints::new(Instant::now());
    while let Ok(first) = rx.recv() {
        let mut group: VecDeque<Op> = VecDeque::from([first]);
        #[cfg(test)]
        if let Some(hook) = WHILE_GATHERING.with(|h| h.borrow_mut().take()) {
            hook();
        }
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(op) => group.push_back(op),
                Err(_) => break,
            }
        }
        // The priority lane goes first: an urgent op waits for no queued write. It is taken
        // after the channel was read, never before: an urgent op is in the lane before its
        // wake-up is sent, so every op whose wake-up this group read is in this take or an earlier one. Taken
        // before, an op queued meanwhile stayed there with its wake-up spent, until some
        // other write came.
        let lane = std::mem::take(&mut *urgent.lock().unwrap_or_else(|p| p.into_inner()));
        for op in lane.into_iter().rev() {
            group.push_front(op);
        }
        // A group whose transaction had to be abandoned half-way leaves the ops it had not
        // run yet; they get a transaction of their own.
        while !group.is_empty() {
            run_group(&conn, &mut group, wait_for_locks, guard.as_ref());
        }
        checkpoints.after_commit(&conn, Instant::now());
    }
}

/// Runs ops from the front of `group` in one transaction and answers them. Returns early,
/// leaving the ops not yet run in `group`, when a savepoint could not be rolled back or
/// released: that op's writes can no longer be told apart from the group's, so the whole
/// transaction is rolled back and the ops that ran are told so.
fn run_group(
    conn: &Connection,
    group: &mut VecDeque<Op>,
    wait_for_locks: bool,
    guard: Option<&FileGuard>,
) {
    if let Err(e) = begin(conn, wait_for_locks) {
        // Answer without running: each op must see the failure, so run none of them.
        for op in group.drain(..) {
            let _ = op(Err(&e));
        }
        return;
    }
    let single = group.len() == 1;
    let mut replies = Vec::with_capacity(group.len());
    while let Some(op) = group.pop_front() {
        if conn.is_autocommit() {
            // SQLite ended the transaction itself on an earlier op's error (a full disk,
            // say): nothing more may run, or it would commit on its own outside the group.
            let _ = op(Err("the transaction was rolled back by an earlier error"));
            continue;
        }
        if single {
            let (ok, reply) = op(Ok(conn));
            if !ok {
                // Nothing else shares this transaction: roll it all back.
                rollback(conn);
                reply(None);
                return;
            }
            replies.push(reply);
            continue;
        }
        if let Err(e) = control(conn, "SAVEPOINT op") {
            // Without its savepoint the op's writes could not be undone alone: do not run it.
            // Nothing changed since the previous op's RELEASE, so the group goes on.
            let _ = op(Err(&format!(
                "the write could not begin (SAVEPOINT failed: {})",
                map_err(e)
            )));
            continue;
        }
        let (ok, reply) = op(Ok(conn));
        let undone = if ok {
            Ok(())
        } else {
            control(conn, "ROLLBACK TO op")
        };
        if let Err(e) = undone.and_then(|()| control(conn, "RELEASE op")) {
            let msg = format!(
                "the transaction was rolled back (a savepoint failed: {})",
                map_err(e)
            );
            rollback(conn);
            reply(Some(&msg));
            replies.into_iter().for_each(|r| r(Some(&msg)));
            return;
        }
        replies.push(reply);
    }
    if conn.is_autocommit() {
        // SQLite ended the transaction itself.
        for reply in replies {
            reply(Some("the transaction was rolled back"));
        }
        return;
    }
    // A file deleted or replaced under this process: committing would acknowledge writes
    // that nobody will ever read.
    if let Some(why) = guard.and_then(|g| g.check().err()) {
        tracing::error!("{why}");
        rollback(conn);
        replies.into_iter().for_each(|r| r(Some(&why)));
        return;
    }
    match control(conn, "COMMIT") {
        Ok(()) => replies.into_iter().for_each(|r| r(None)),
        Err(e) => {
            let msg = map_err(e).to_string();
            rollback(conn);
            replies.into_iter().for_each(|r| r(Some(&msg)));
        }
    }
}

/// Ends the open transaction, if any, without keeping anything. Should ROLLBACK itself fail,
/// the next BEGIN would fail inside the still-open transaction; the log says why.
fn rollback(conn: &Connection) {
    if conn.is_autocommit() {
        return;
    }
    if let Err(e) = control(conn, "ROLLBACK") {
        tracing::error!(error = %map_err(e), "SQLite writer: ROLLBACK failed");
    }
}

#[cfg(test)]
mod tests {
    //! Issue 11.7: the writer's savepoints and a panicking write, by injection. A blocking
    //! write holds the writer while the test queues the writes that must share one group.

    use std::sync::mpsc as std_mpsc;

    use super::*;

    fn open(dir: &tempfile::TempDir) -> Connection {
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER NOT NULL)")
            .unwrap();
        conn
    }

    fn rows(dir: &tempfile::TempDir) -> Vec<i64> {
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        let mut stmt = conn.prepare("SELECT x FROM t ORDER BY x").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    type Write = Box<dyn FnOnce(&Connection) -> Result<()> + Send>;

    fn insert(x: i64) -> Write {
        Box::new(move |c| {
            c.execute("INSERT INTO t VALUES (?1)", [x])?;
            Ok(())
        })
    }

    /// Inserts, then makes the next transaction-control statement `fail` fail (when given).
    fn insert_then_inject(x: i64, fail: &'static str) -> Write {
        Box::new(move |c| {
            insert(x)(c)?;
            FAIL_CONTROL.with(|f| f.set(Some(fail)));
            Ok(())
        })
    }

    /// Inserts, then fails: its insert must not commit.
    fn partial_then_fail(x: i64, fail: Option<&'static str>) -> Write {
        Box::new(move |c| {
            insert(x)(c)?;
            if let Some(fail) = fail {
                FAIL_CONTROL.with(|f| f.set(Some(fail)));
            }
            Err(Error::Database(
                "injected failure after a partial write".into(),
            ))
        })
    }

    fn partial_then_panic(x: i64) -> Write {
        Box::new(move |c| {
            insert(x)(c)?;
            panic!("injected panic after a partial write");
        })
    }

    /// Runs `writes` as one group (in order) and returns each caller's answer.
    async fn group(writer: &Writer, writes: Vec<Write>) -> Vec<Result<()>> {
        let (started_tx, started_rx) = std_mpsc::channel();
        let (release_tx, release_rx) = std_mpsc::channel::<()>();
        let mut blocker = Box::pin(writer.run(move |_| {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            Ok(())
        }));
        assert!(futures::poll!(blocker.as_mut()).is_pending());
        started_rx.recv().unwrap();
        let mut calls: Vec<_> = writes
            .into_iter()
            .map(|w| Box::pin(writer.run(w)))
            .collect();
        for call in &mut calls {
            assert!(
                futures::poll!(call.as_mut()).is_pending(),
                "queued behind the blocker"
            );
        }
        release_tx.send(()).unwrap();
        blocker.await.unwrap();
        futures::future::join_all(calls).await
    }

    /// The transactions the writer committed so far (read inside a write, before the
    /// reading write's own commit).
    async fn commits(writer: &Writer) -> u64 {
        writer.run(|_| Ok(COMMITS.with(|c| c.get()))).await.unwrap()
    }

    /// A write that breaks a constraint: an error from SQLite itself, after a good insert.
    fn insert_then_violate(x: i64) -> Write {
        Box::new(move |c| {
            insert(x)(c)?;
            c.execute("INSERT INTO t VALUES (NULL)", [])
                .map(drop)
                .map_err(map_err)
        })
    }

    /// Group commit: writes queued while the writer is busy go into one transaction, one
    /// COMMIT for all of them, and each caller is answered once that commit is done.
    #[tokio::test]
    async fn concurrent_writes_share_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Writer::start(open(&dir));
        let before = commits(&writer).await;
        let answers = group(&writer, (1..=20).map(insert).collect()).await;
        assert!(answers.iter().all(Result::is_ok), "{answers:?}");
        assert_eq!(rows(&dir), (1..=20).collect::<Vec<_>>());
        // The read of `before` (1), the blocker (1) and the twenty writes (1).
        assert_eq!(
            commits(&writer).await - before,
            3,
            "twenty writes, one commit"
        );
    }

    /// A caller whose write fails (its own error, or SQLite's) takes back only its own
    /// writes: the others of its group commit, in that same one transaction.
    #[tokio::test]
    async fn a_failing_write_leaves_the_rest_of_its_group_committed() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Writer::start(open(&dir));
        let before = commits(&writer).await;
        let answers = group(
            &writer,
            vec![
                insert(1),
                partial_then_fail(2, None),
                insert(3),
                insert_then_violate(4),
                insert(5),
            ],
        )
        .await;
        let ok: Vec<bool> = answers.iter().map(Result::is_ok).collect();
        assert_eq!(ok, [true, false, true, false, true], "{answers:?}");
        assert!(
            matches!(&answers[3], Err(Error::Invalid { .. })),
            "the caller gets SQLite's error: {:?}",
            answers[3]
        );
        assert_eq!(
            rows(&dir),
            [1, 3, 5],
            "the failing writes' inserts did not commit"
        );
        assert_eq!(
            commits(&writer).await - before,
            3,
            "the group still committed once"
        );
    }

    #[tokio::test]
    async fn a_failed_savepoint_runs_nothing_and_the_rest_of_the_group_commits() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Writer::start(open(&dir));
        let answers = group(
            &writer,
            vec![
                insert_then_inject(1, "SAVEPOINT op"),
                partial_then_fail(2, None),
                insert(3),
            ],
        )
        .await;
        assert!(answers[0].is_ok() && answers[2].is_ok(), "{answers:?}");
        assert!(answers[1].is_err());
        assert_eq!(
            rows(&dir),
            [1, 3],
            "the failed write's partial insert did not commit"
        );
        writer.run(insert(4)).await.unwrap();
        assert_eq!(rows(&dir), [1, 3, 4]);
    }

    #[tokio::test]
    async fn a_failed_rollback_to_savepoint_commits_no_partial_write() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Writer::start(open(&dir));
        let answers = group(
            &writer,
            vec![
                insert(1),
                partial_then_fail(2, Some("ROLLBACK TO op")),
                insert(3),
            ],
        )
        .await;
        assert!(answers[1].is_err());
        let committed = rows(&dir);
        assert!(
            !committed.contains(&2),
            "the failed write's partial insert did not commit: {committed:?}"
        );
        // Every caller's answer is the truth: an Ok write committed, an Err one did not.
        for (x, answer) in [(1, &answers[0]), (3, &answers[2])] {
            assert_eq!(
                answer.is_ok(),
                committed.contains(&x),
                "write {x}: {answer:?}, committed {committed:?}"
            );
        }
        assert!(
            answers[2].is_ok(),
            "a write after the failure runs in a new transaction"
        );
        writer.run(insert(4)).await.unwrap();
        assert!(rows(&dir).contains(&4));
    }

    #[tokio::test]
    async fn a_failed_release_commits_no_partial_write() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Writer::start(open(&dir));
        let answers = group(
            &writer,
            vec![
                insert(1),
                partial_then_fail(2, Some("RELEASE op")),
                insert(3),
            ],
        )
        .await;
        assert!(answers[1].is_err());
        let committed = rows(&dir);
        assert!(!committed.contains(&2), "{committed:?}");
        for (x, answer) in [(1, &answers[0]), (3, &answers[2])] {
            assert_eq!(
                answer.is_ok(),
                committed.contains(&x),
                "write {x}: {answer:?}, committed {committed:?}"
            );
        }
        writer.run(insert(4)).await.unwrap();
        assert!(rows(&dir).contains(&4));
    }

    #[tokio::test]
    async fn a_panicking_write_is_rolled_back_and_the_writer_keeps_serving() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Writer::start(open(&dir));
        let answers = group(&writer, vec![insert(1), partial_then_panic(2), insert(3)]).await;
        assert!(answers[0].is_ok() && answers[2].is_ok(), "{answers:?}");
        match &answers[1] {
            Err(Error::Database(m)) => assert!(
                m.contains("panicked") && m.contains("injected panic"),
                "{m}"
            ),
            other => panic!("the panicking caller gets an error: {other:?}"),
        }
        assert_eq!(rows(&dir), [1, 3]);
        // Alone in its group, too.
        assert!(writer.run(partial_then_panic(5)).await.is_err());
        writer
            .run(insert(4))
            .await
            .expect("the writer thread still serves");
        assert_eq!(rows(&dir), [1, 3, 4]);
    }

    /// Issue 11.11: the error of a write that waited out another connection's write lock says
    /// "database unavailable" once, not twice; and the writer works again once the lock is
    /// released.
    #[tokio::test]
    async fn a_write_locked_out_says_unavailable_once_and_later_writes_work() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Writer::start(open(&dir));
        writer
            .run(|_| {
                BEGIN_DEADLINE_FOR_TEST.with(|d| d.set(Some(Duration::from_millis(200))));
                Ok(())
            })
            .await
            .unwrap();
        let holder = Connection::open(dir.path().join("w.db")).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let err = writer.run(insert(1)).await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
        assert_eq!(text.matches("database unavailable").count(), 1, "{text}");
        assert!(text.contains("busy"), "{text}");
        holder.execute_batch("COMMIT").unwrap();
        writer.run(insert(2)).await.unwrap();
        assert_eq!(rows(&dir), [2]);
    }

    /// Issue 11.11: a long-running process's writer waits out a write lock held past the
    /// deadline (a process stopped inside a write transaction) instead of failing its writes,
    /// and the write goes through once the lock is released.
    #[tokio::test]
    async fn a_waiting_writer_outlasts_a_lock_held_past_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Writer::start_with(open(&dir), true, None);
        writer
            .run(|_| {
                BEGIN_DEADLINE_FOR_TEST.with(|d| d.set(Some(Duration::from_millis(100))));
                Ok(())
            })
            .await
            .unwrap();
        let holder = Connection::open(dir.path().join("w.db")).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let release = std::thread::spawn(move || {
            // Several deadlines long: a writer that gives up would have answered by then.
            std::thread::sleep(Duration::from_millis(600));
            holder.execute_batch("COMMIT").unwrap();
        });
        writer
            .run(insert(1))
            .await
            .expect("waited for the lock, then wrote");
        release.join().unwrap();
        assert_eq!(rows(&dir), [1]);
    }

    /// An urgent write (a heartbeat, a worker's registration) queued while the writer gathered
    /// a group from its channel was left in the priority lane: the writer took the lane before
    /// reading the rest of the channel, read the urgent write's wake-up there, and slept until
    /// some other write came. A worker's registration, its first write, could wait forever.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_urgent_write_queued_while_a_group_gathers_is_not_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let writer = std::sync::Arc::new(Writer::start(open(&dir)));
        let (urgent, answer) = op(insert(7));
        let lane = writer.clone();
        writer
            .run(move |_| {
                WHILE_GATHERING.with(|h| {
                    *h.borrow_mut() = Some(Box::new(move || lane.queue_urgent(urgent).unwrap()))
                });
                Ok(())
            })
            .await
            .unwrap();
        // The group this write starts is gathered with the hook, which queues the urgent write.
        writer.run(insert(2)).await.unwrap();
        // Not a timing assertion: only a bound on how long a lost write is waited for.
        tokio::time::timeout(Duration::from_secs(10), answer)
            .await
            .expect("the urgent write was answered, not left in the lane")
            .unwrap()
            .unwrap();
        assert_eq!(rows(&dir), [2, 7]);
    }
}
