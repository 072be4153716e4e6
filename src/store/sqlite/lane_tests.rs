//! The writer's priority lane (issue 11.6): a heartbeat joins the very next group, ahead of
//! every write queued before it, so it waits at most for the transaction in progress.
//! Also the writer thread's checkpoint policy (`checkpoint.rs`) as it runs after the writer's
//! commits: kept here, since `checkpoint` must not import the writer that imports it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::checkpoint::{MAX_BACKOFF, PROBE};
use super::writer::Writer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urgent_write_overtakes_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let conn = Connection::open(dir.path().join("lane.db")).unwrap();
    let writer = Arc::new(Writer::start(conn));
    let order: Arc<Mutex<Vec<String>>> = Arc::default();

    // Hold the writer inside a first group until everything else is queued.
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let blocker = {
        let writer = writer.clone();
        tokio::spawn(async move {
            writer
                .run(move |_c: &Connection| {
                    let _ = started_tx.send(());
                    let _ = release_rx.recv();
                    Ok(())
                })
                .await
        })
    };
    started_rx.await.unwrap();
    let mut queued = Vec::new();
    for i in 0..1000 {
        let (writer, order) = (writer.clone(), order.clone());
        queued.push(tokio::spawn(async move {
            writer
                .run(move |_c: &Connection| {
                    order.lock().unwrap().push(format!("job write {i}"));
                    Ok(())
                })
                .await
        }));
    }
    // Let the job writes reach the writer's queue before the heartbeat.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // In the priority lane at its first poll (run_urgent queues it before it awaits the
    // reply): polled once here, not spawned and given a moment, which a loaded machine may
    // not use before the release below.
    let mut urgent = {
        let order = order.clone();
        Box::pin(writer.run_urgent(move |_c: &Connection| {
            order.lock().unwrap().push("heartbeat".into());
            Ok(())
        }))
    };
    assert!(
        futures::poll!(&mut urgent).is_pending(),
        "the writer is held"
    );
    release_tx.send(()).unwrap();
    blocker.await.unwrap().unwrap();
    urgent.await.unwrap();
    for q in queued {
        q.await.unwrap().unwrap();
    }
    let order = order.lock().unwrap();
    assert_eq!(order.len(), 1001);
    assert_eq!(
        order[0], "heartbeat",
        "the heartbeat ran first, not behind 1000 queued writes"
    );
}

fn wal(path: &std::path::Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .unwrap();
    conn
}

/// The writer thread runs the policy after its commits: with a reader pinning the WAL,
/// SQLite's automatic checkpoint, which ran after every commit and sorted the whole WAL
/// each time, is off; once the reader ended, it is on again and the WAL is copied back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_stops_checkpointing_after_every_commit_while_a_reader_pins_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let writer = Writer::start(wal(&path));
    let write = |pages: usize| {
        writer.run(move |c| {
            for _ in 0..pages {
                c.execute("INSERT INTO t VALUES (randomblob(4000))", [])?;
            }
            Ok(())
        })
    };
    let auto = || {
        writer.run(|c| Ok(c.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get::<_, i64>(0))?))
    };
    writer
        .run(|c| Ok(c.execute_batch("CREATE TABLE t (b BLOB)")?))
        .await
        .unwrap();
    let reader = wal(&path);
    reader.execute_batch("BEGIN").unwrap();
    reader
        .query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
        .unwrap();
    for _ in 0..12 {
        write(1_000).await.unwrap();
    }
    // The writer looks at most once per PROBE.
    tokio::time::sleep(PROBE + Duration::from_millis(100)).await;
    write(1).await.unwrap();
    assert_eq!(auto().await.unwrap(), 0, "the automatic checkpoint is off");

    // The next try comes within the wait, which doubled after each try that copied
    // nothing (each commit of a slow machine may have been one).
    reader.execute_batch("COMMIT").unwrap();
    let deadline = Instant::now() + 3 * MAX_BACKOFF;
    while auto().await.unwrap() != 1_000 {
        assert!(
            Instant::now() < deadline,
            "the automatic checkpoint stays off"
        );
        tokio::time::sleep(PROBE / 2).await;
        write(1).await.unwrap();
    }
}
