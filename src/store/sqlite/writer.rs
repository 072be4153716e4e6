//! The one write connection of a process and its group commit.

use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::{is_busy, map_err, MAX_GROUP};
use crate::error::{Error, Result};

/// Called once the group's transaction has ended: `None` when it committed, else why not.
type Reply = Box<dyn FnOnce(Option<&str>) + Send>;
/// Runs one caller's writes (or, given `Err`, answers the caller that they could not run);
/// returns whether they succeeded and how to answer the caller once the transaction ended.
type Op = Box<dyn FnOnce(std::result::Result<&Connection, &str>) -> (bool, Reply) + Send>;

/// How long the writer keeps retrying to begin a transaction while other processes hold the
/// lock, past SQLite's own busy_timeout, before it fails the waiting callers.
const BEGIN_DEADLINE: Duration = Duration::from_secs(60);

pub(super) struct Writer {
    tx: mpsc::Sender<Op>,
    /// The priority lane: ops that join the next group ahead of everything queued in `tx`.
    urgent: Arc<Mutex<Vec<Op>>>,
}

impl Writer {
    pub(super) fn start(conn: Connection) -> Self {
        let (tx, rx) = mpsc::channel::<Op>();
        let urgent = Arc::new(Mutex::new(Vec::new()));
        let lane = urgent.clone();
        std::thread::Builder::new()
            .name("porter-sqlite-writer".into())
            .spawn(move || run(conn, rx, lane))
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

    /// Like [`Writer::run`], but `f` joins the very next group, ahead of every write queued
    /// before it: for a worker's heartbeat, which must not wait behind a long queue of job
    /// writes (it waits at most for the transaction in progress).
    pub(super) async fn run_urgent<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (op, reply) = op(f);
        self.urgent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(op);
        // Wakes the writer thread if it is idle; the op itself does nothing.
        self.tx
            .send(Box::new(|_| (true, Box::new(|_| {}))))
            .map_err(|_| Error::Closed)?;
        reply.await.map_err(|_| Error::Closed)?
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
            let result = f(conn);
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
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

fn begin(conn: &Connection) -> std::result::Result<(), String> {
    let started = Instant::now();
    loop {
        match control(conn, "BEGIN IMMEDIATE") {
            Ok(()) => return Ok(()),
            Err(e) if is_busy(&e) && started.elapsed() < BEGIN_DEADLINE => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(map_err(e).to_string()),
        }
    }
}

fn run(conn: Connection, rx: mpsc::Receiver<Op>, urgent: Arc<Mutex<Vec<Op>>>) {
    while let Ok(first) = rx.recv() {
        // The priority lane first: an urgent op waits for no queued write.
        let mut group: Vec<Op> =
            std::mem::take(&mut *urgent.lock().unwrap_or_else(|p| p.into_inner()));
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(op) => group.push(op),
                Err(_) => break,
            }
        }
        if let Err(e) = begin(&conn) {
            // Answer without running: each op must see the failure, so run none of them.
            for op in group {
                let _ = op(Err(&e));
            }
            continue;
        }
        let single = group.len() == 1;
        let mut replies = Vec::with_capacity(group.len());
        for op in group {
            if conn.is_autocommit() {
                // SQLite ended the transaction itself on an earlier op's error (a full disk,
                // say): nothing more may run, or it would commit on its own outside the group.
                let _ = op(Err("the transaction was rolled back by an earlier error"));
                continue;
            }
            if single {
                let (ok, reply) = op(Ok(&conn));
                if !ok {
                    // Nothing else shares this transaction: roll it all back below.
                    let _ = control(&conn, "ROLLBACK");
                    reply(None);
                    replies.clear();
                    break;
                }
                replies.push(reply);
            } else {
                let _ = control(&conn, "SAVEPOINT op");
                let (ok, reply) = op(Ok(&conn));
                if !ok {
                    let _ = control(&conn, "ROLLBACK TO op");
                }
                let _ = control(&conn, "RELEASE op");
                replies.push(reply);
            }
        }
        if conn.is_autocommit() {
            // Rolled back above (a single failed op), or SQLite ended the transaction itself.
            for reply in replies {
                reply(Some("the transaction was rolled back"));
            }
            continue;
        }
        match control(&conn, "COMMIT") {
            Ok(()) => replies.into_iter().for_each(|r| r(None)),
            Err(e) => {
                let msg = map_err(e).to_string();
                let _ = control(&conn, "ROLLBACK");
                replies.into_iter().for_each(|r| r(Some(&msg)));
            }
        }
    }
}
