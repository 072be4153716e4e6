//! The writer's priority lane (issue 11.6): a heartbeat joins the very next group, ahead of
//! every write queued before it, so it waits at most for the transaction in progress.

use std::sync::{Arc, Mutex};

use rusqlite::Connection;

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
    let urgent = {
        let (writer, order) = (writer.clone(), order.clone());
        tokio::spawn(async move {
            writer
                .run_urgent(move |_c: &Connection| {
                    order.lock().unwrap().push("heartbeat".into());
                    Ok(())
                })
                .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    release_tx.send(()).unwrap();
    blocker.await.unwrap().unwrap();
    urgent.await.unwrap().unwrap();
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
