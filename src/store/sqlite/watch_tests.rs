//! The change watcher (`PRAGMA data_version`): a commit by another connection wakes this
//! process's subscribers, whenever it lands after they subscribed.

use std::time::Duration;

use futures::FutureExt;
use rusqlite::Connection;

use super::ChangeWatcher;
use crate::store::wake::Wakeup;

/// A WAL database in a fresh directory (kept alive by the returned guard), its watcher opened.
fn opened() -> (tempfile::TempDir, std::path::PathBuf, ChangeWatcher) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("watch.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA journal_mode = WAL;")
        .unwrap();
    let watcher = ChangeWatcher::open(&path, "NORMAL").unwrap();
    (dir, path, watcher)
}

fn commit_elsewhere(path: &std::path::Path) {
    let other = Connection::open(path).unwrap();
    other
        .execute_batch("CREATE TABLE IF NOT EXISTS t (x); INSERT INTO t VALUES (1);")
        .unwrap();
}

/// CI failure of `insert_wakes_subscribers::sqlite`: the watcher thread took its first sample
/// only once it ran, so a commit that landed between opening the store and that first sample
/// became the baseline and woke nobody. The baseline is now read before the store is returned.
#[test]
fn a_commit_right_after_open_wakes_a_subscriber() {
    let (_dir, path, mut watcher) = opened();
    let wakeup = Wakeup::default();
    let sub = wakeup.subscribe("default");
    commit_elsewhere(&path);
    watcher.look(&wakeup);
    assert!(
        sub.notified().now_or_never().is_some(),
        "the first look after a commit wakes the subscriber"
    );
}

/// A commit seen by a look wakes whoever subscribed before the commit, even if the look began
/// while nobody listened (the old watcher read "nobody listens" first, then the new version,
/// and dropped the change).
#[test]
fn a_look_that_sees_a_commit_always_wakes() {
    let (_dir, path, mut watcher) = opened();
    let wakeup = Wakeup::default();
    watcher.look(&wakeup);
    let sub = wakeup.subscribe("default");
    commit_elsewhere(&path);
    watcher.look(&wakeup);
    assert!(sub.notified().now_or_never().is_some());
    // No commit since: no wake.
    watcher.look(&wakeup);
    let quiet = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(async { tokio::time::timeout(Duration::from_millis(50), sub.notified()).await });
    assert!(quiet.is_err(), "no wake without a commit");
}
